"""Workspaces: one package per modality, each the single entry point of its page and CLI command.

Each holds ``pipeline`` (load -> predict -> explain), ``trust`` (the generic checks run on it),
``report`` (its case-report content), ``exports`` (CSVs) and ``samples`` (demo inputs), and
re-exports what its page needs from ``__init__``. Workspaces import the layers below them
(``report``, ``plots``, ``trust``, ``explain``, ``models``, ``io``), never each other.

| package   | modality | page                       |
|-----------|----------|----------------------------|
| imaging   | image    | pages/imaging.py           |
| records   | tabular  | pages/records.py (tab 1)   |
| notes     | text     | pages/records.py (tab 2)   |
| vitals    | series   | pages/vitals.py            |
"""
