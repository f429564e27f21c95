"""A fix for a race in the pinned Streamlit (1.67.0) that lost downloads; applied once, when ``ui`` is imported.

A download button whose file is built on click (``data=callable``, as every take-away button here is) asks the
server for the file with a request; the server answers with a ``backend_operation_response``. The click also
starts a rerun (the audit's ``on_click``). When that rerun starts, Streamlit empties the session's outgoing
queue, keeping only its lifecycle messages: a reply that was queued but not yet sent is dropped, and the button
spins, disabled, until the browser gives up after 180 s. Here it lost about one de-identified-DICOM click in
four (a CI run failed on it). The same clear drops the replies to upload-URL requests and heartbeats.

The fix keeps those replies in the queue when a run clears it. They answer a request the browser is waiting
on and belong to no script run, so keeping them cannot show anything stale. ``tests/app/test_streamlit_fixes.py`` checks
the fix against the installed Streamlit, so an upgrade that changes the queue fails there, not in a browser.
"""
from __future__ import annotations

from streamlit.runtime.forward_msg_queue import ForwardMsgQueue

#: ForwardMsg types that answer a browser request and belong to no script run.
REPLIES = frozenset({"backend_operation_response", "file_urls_response", "heartbeat_ack"})


def keep_replies_on_clear() -> None:
    """Make ``ForwardMsgQueue.clear(retain_lifecycle_msgs=True)`` keep queued replies (idempotent)."""
    clear = ForwardMsgQueue.clear
    if getattr(clear, "_medai_keeps_replies", False):
        return

    def clear_keeping_replies(self, retain_lifecycle_msgs: bool = False, *args, **kwargs) -> None:  # noqa: ANN001
        replies = [m for m in self._queue if m.WhichOneof("type") in REPLIES] if retain_lifecycle_msgs else []
        clear(self, retain_lifecycle_msgs, *args, **kwargs)
        kept = {id(m) for m in self._queue}  # a Streamlit that keeps them itself gets no second copy
        self._queue.extend(m for m in replies if id(m) not in kept)

    clear_keeping_replies._medai_keeps_replies = True  # type: ignore[attr-defined]
    clear_keeping_replies.__doc__ = clear.__doc__
    ForwardMsgQueue.clear = clear_keeping_replies


keep_replies_on_clear()
