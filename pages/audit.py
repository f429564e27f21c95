"""Audit: who asked what of which model, when; for the admins listed in the secrets. Filters and a CSV export."""
import datetime as dt

import pandas as pd
import streamlit as st

import ui
from medai_core.audit import COLUMNS, FILTERS, open_store, records_csv

LIMIT = 10_000  # rows shown and exported at once; narrow the filters for older ones
UTC = dt.UTC

ui.route_via_app()
st.title("Audit trail")
if not ui.is_admin():  # app.py lists the page for admins only; a direct visit is refused here too
    st.error("Admins only. The audit trail is shown to signed-in users listed as admins in "
             "`.streamlit/secrets.toml` (`[medai] admins`).", icon=":material/lock:")
    st.stop()
try:
    store = open_store()
    options, span = {c: store.values(c) for c in FILTERS}, store.span()
except Exception as err:  # noqa: BLE001 - the store is down or misconfigured: say so, no details
    st.error(f"The audit trail cannot be read right now ({type(err).__name__}).", icon=":material/error:")
    st.stop()
st.caption("Append-only: every prediction, explanation, sanity check, export and report in the app, and every batch "
           "job. Inputs are kept as sha256 digests, never their content, file names or patient identifiers. Times in "
           f"UTC. Store: `{store.url}`.")
cols = st.columns(len(FILTERS) + 1)
chosen = {c: col.selectbox(c.capitalize(), [None, *options[c]], key=f"audit.{c}",
                           format_func=lambda v: "any" if v is None else v) for col, c in zip(cols, FILTERS)}
today = dt.datetime.now(UTC).date()
dates = cols[-1].date_input("Dates (UTC)", (span[0].date() if span else today, today), key="audit.dates")
since = until = None
if isinstance(dates, (tuple, list)) and dates:  # one date while the user is still picking the range
    since = dt.datetime.combine(dates[0], dt.time(), UTC)
    until = dt.datetime.combine(dates[-1] + dt.timedelta(days=1), dt.time(), UTC)
records = store.query(**chosen, since=since, until=until, limit=LIMIT)
st.markdown(f"**{len(records):,} record(s)**" + (f" (the newest {LIMIT:,}: narrow the filters)" if len(records) == LIMIT else ""))
st.dataframe(pd.DataFrame([r.row() for r in records], columns=list(COLUMNS)), hide_index=True, width="stretch",
             key="audit.table")
st.download_button("Export CSV", lambda: records_csv(records), "medai_audit.csv", "text/csv", key="audit.csv",
                   icon=":material/download:", on_click=ui.audit, args=("export", "audit"),
                   kwargs={"params": {"what": "audit CSV", "rows": len(records), **{k: v for k, v in chosen.items() if v}},
                           "once": False})
