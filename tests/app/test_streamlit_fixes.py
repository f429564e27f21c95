"""``ui.fixes``: replies the browser waits for survive the queue clear a new script run makes.

Without the fix, a download built on click lost its reply in 4 of 16 real-browser clicks here (the button spun
for 180 s); with it, 16 of 16 came. These tests drive the installed Streamlit's own queue and ``AppSession``
method, so a Streamlit upgrade that changes either fails here.
"""
from __future__ import annotations

from types import SimpleNamespace

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.runtime.app_session import AppSession
from streamlit.runtime.forward_msg_queue import ForwardMsgQueue

import ui  # noqa: F401 - importing ui applies the fix
from ui import fixes


def _queue_with_a_run_and_replies() -> ForwardMsgQueue:
    q = ForwardMsgQueue()
    delta = ForwardMsg()
    delta.metadata.delta_path[:] = [0, 0]
    delta.delta.new_element.markdown.body = "last run's text"
    q.enqueue(delta)
    reply = ForwardMsg()
    reply.backend_operation_response.request_id = "download-1"
    reply.backend_operation_response.deferred_file.url = "/media/abc.dcm"
    q.enqueue(reply)
    urls = ForwardMsg()
    urls.file_urls_response.response_id = "upload-1"
    q.enqueue(urls)
    finished = ForwardMsg()
    finished.script_finished = ForwardMsg.FINISHED_SUCCESSFULLY
    q.enqueue(finished)
    return q


def _types(q: ForwardMsgQueue) -> list[str]:
    return [m.WhichOneof("type") for m in q._queue]


def test_a_new_run_keeps_queued_replies_and_drops_the_last_runs_elements():
    q = _queue_with_a_run_and_replies()
    AppSession._clear_queue(SimpleNamespace(_browser_queue=q))  # what a starting script run calls
    kinds = _types(q)
    assert "delta" not in kinds  # the old run's elements still go, as Streamlit intends
    assert kinds.count("backend_operation_response") == 1 and kinds.count("file_urls_response") == 1
    assert "script_finished" in kinds  # lifecycle messages are kept as before
    reply = next(m for m in q._queue if m.WhichOneof("type") == "backend_operation_response")
    assert reply.backend_operation_response.deferred_file.url == "/media/abc.dcm"


def test_a_fragment_run_keeps_replies_too():
    q = _queue_with_a_run_and_replies()
    AppSession._clear_queue(SimpleNamespace(_browser_queue=q), fragment_ids_this_run=["frag"])
    assert _types(q).count("backend_operation_response") == 1


def test_flush_still_empties_everything():
    q = _queue_with_a_run_and_replies()
    sent = q.flush()
    assert len(sent) == 4 and len(q) == 0


def test_the_fix_is_applied_once():
    patched = ForwardMsgQueue.clear
    fixes.keep_replies_on_clear()
    assert ForwardMsgQueue.clear is patched and patched._medai_keeps_replies


def test_streamlit_itself_still_drops_replies_on_clear():
    """The bug the fix is for. When an upgrade keeps replies itself this fails: then delete ``ui/fixes.py``."""
    import inspect

    original = inspect.getclosurevars(ForwardMsgQueue.clear).nonlocals["clear"]
    q = _queue_with_a_run_and_replies()
    original(q, retain_lifecycle_msgs=True)
    assert "backend_operation_response" not in _types(q)
