"""Failure (and optional success / slow-run) notifications through Prefect flow state hooks.

Off by default. Setting a destination turns it on (never write a webhook URL into a file):

=================================  =========================================================
Variable                           Meaning (default)
=================================  =========================================================
PIPELINE_NOTIFY_WEBHOOK_URL        Slack/Teams-compatible incoming webhook URL (unset: off)
PIPELINE_NOTIFY_SECRET_BLOCK       ... or the name of a Prefect ``Secret`` block holding it
PIPELINE_NOTIFY_ON_SUCCESS         also notify when a run completes (false)
PIPELINE_NOTIFY_SLOW_SECONDS       on completion, notify when the run took longer (unset)
PIPELINE_NOTIFY_TIMEOUT            seconds to wait for the receiver (10)
=================================  =========================================================

A run can also notify a warning while it goes on (:func:`warn`: features drifting past
``PIPELINE_DRIFT_THRESHOLD`` with ``PIPELINE_DRIFT_ACTION=warn``), with ``state`` "Warning".

The message is JSON ``{"text": ...}`` (what Slack and Teams incoming webhooks accept) plus
structured fields (``flow``, ``flow_run``, ``state``, ``url``, ``error``). A notification that
cannot be delivered (receiver down, HTTP error, timeout) is logged and never changes the run's
outcome: the hooks run after the final state is set and swallow every delivery error.

A run that never finishes (a stuck cluster, a killed container) cannot notify itself: the Prefect
automations in ``automations.yaml`` (created by ``make deploy``) cover crashed and too-long runs
from the server side.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

ENV_WEBHOOK = "PIPELINE_NOTIFY_WEBHOOK_URL"
ENV_SECRET_BLOCK = "PIPELINE_NOTIFY_SECRET_BLOCK"  # noqa: S105 - the name of a variable, not a secret  # pragma: allowlist secret
ENV_ON_SUCCESS = "PIPELINE_NOTIFY_ON_SUCCESS"
ENV_SLOW = "PIPELINE_NOTIFY_SLOW_SECONDS"
ENV_TIMEOUT = "PIPELINE_NOTIFY_TIMEOUT"


@dataclass(frozen=True)
class NotifySettings:
    webhook_url: str | None = None
    secret_block: str | None = None
    on_success: bool = False
    slow_seconds: float | None = None
    timeout: float = 10.0

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or self.secret_block)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> NotifySettings:
        env = os.environ if env is None else env
        slow = (env.get(ENV_SLOW) or "").strip()
        return cls(
            webhook_url=(env.get(ENV_WEBHOOK) or "").strip() or None,
            secret_block=(env.get(ENV_SECRET_BLOCK) or "").strip() or None,
            on_success=(env.get(ENV_ON_SUCCESS) or "").strip().lower() in ("1", "true", "yes", "on"),
            slow_seconds=float(slow) if slow else None,
            timeout=float((env.get(ENV_TIMEOUT) or "").strip() or 10.0),
        )

    def destination(self) -> str:
        """The webhook URL, from the environment or the Prefect Secret block (read at send time)."""
        if self.webhook_url:
            return self.webhook_url
        from prefect.blocks.system import Secret

        return str(Secret.load(self.secret_block).get())


def flow_run_url(flow_run: Any) -> str:
    """Link to the flow run in the Prefect UI (``PREFECT_UI_URL``, derived from the API URL)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    base = (PREFECT_UI_URL.value() or "").rstrip("/")
    if not base:
        api = (PREFECT_API_URL.value() or "").rstrip("/")
        base = api[: -len("/api")] if api.endswith("/api") else api
    return f"{base}/runs/flow-run/{flow_run.id}" if base else f"flow-run {flow_run.id}"


def _error(state: Any) -> str | None:
    if not (state.is_failed() or state.is_crashed()):
        return None
    try:
        state.result(raise_on_failure=True)
    except BaseException as exc:  # noqa: BLE001 - the run's own error, reported as text
        return f"{type(exc).__name__}: {exc}"
    return state.message or state.name


def run_seconds(flow_run: Any, state: Any) -> float | None:
    """Wall time of the run so far (the hook's flow-run object may predate its final state)."""
    start = getattr(flow_run, "start_time", None)
    end = getattr(state, "timestamp", None)
    if start is not None and end is not None:
        return max(0.0, (end - start).total_seconds())
    total = getattr(flow_run, "total_run_time", None)
    return total.total_seconds() if total else None


def message(flow: Any, flow_run: Any, state: Any, note: str | None = None) -> dict[str, Any]:
    """The JSON body: Slack/Teams ``text`` plus the same facts as fields."""
    url = flow_run_url(flow_run)
    error = _error(state)
    seconds = run_seconds(flow_run, state)
    headline = f"Flow run {flow_run.name!r} of flow {flow.name!r}: {state.name}"
    lines = [headline + (f" ({note})" if note else ""), url]
    if error:
        lines.append(f"Error: {error}")
    return {
        "text": "\n".join(lines),
        "flow": flow.name,
        "flow_run": flow_run.name,
        "flow_run_id": str(flow_run.id),
        "state": state.name,
        "url": url,
        "error": error,
        "seconds": seconds,
        "note": note,
    }


def post(url: str, body: dict[str, Any], timeout: float) -> None:
    if not url.startswith(("https://", "http://")):
        raise ValueError("the notification webhook must be an http(s) URL")
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310 - http(s) only
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
        response.read()


def send(flow: Any, flow_run: Any, state: Any, note: str | None = None, settings: NotifySettings | None = None) -> bool:
    """Deliver one message; ``False`` (and a log line) when off or undeliverable. Never raises."""
    settings = settings or NotifySettings.from_env()
    if not settings.enabled:
        return False
    try:
        post(settings.destination(), message(flow, flow_run, state, note), settings.timeout)
    except Exception as exc:  # noqa: BLE001 - a notification must never change the run's outcome
        log.warning("notification for flow run %s not delivered: %s: %s", flow_run.name, type(exc).__name__, exc)
        return False
    log.info("notification for flow run %s (%s) delivered", flow_run.name, state.name)
    return True


class _Warning:
    """The state shown in a warning sent while the run goes on (it has no final state yet)."""

    name = "Warning"
    message = None

    def is_failed(self) -> bool:
        return False

    def is_crashed(self) -> bool:
        return False


def warn(note: str, settings: NotifySettings | None = None) -> bool:
    """Notify a warning from inside the running flow (e.g. drift over its threshold); never raises.

    Same destination, body and delivery rules as the failure notifications, with ``state`` "Warning"
    and the warning as ``note``.
    """
    settings = settings or NotifySettings.from_env()
    if not settings.enabled:
        return False
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        log.warning("warning not notified (not inside a flow run): %s", note)
        return False
    return send(context.flow, context.flow_run, _Warning(), note=note, settings=settings)


# -- Prefect flow state hooks ---------------------------------------------------------------------
def on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    send(flow, flow_run, state)


def on_crashed(flow: Any, flow_run: Any, state: Any) -> None:
    send(flow, flow_run, state, note="the flow-run process crashed")


def on_completion(flow: Any, flow_run: Any, state: Any) -> None:
    settings = NotifySettings.from_env()
    if not settings.enabled:
        return
    seconds = run_seconds(flow_run, state)
    if settings.slow_seconds is not None and seconds is not None and seconds > settings.slow_seconds:
        send(flow, flow_run, state, note=f"took {seconds:.0f}s, over {settings.slow_seconds:g}s", settings=settings)
    elif settings.on_success:
        send(flow, flow_run, state, settings=settings)


HOOKS: dict[str, list[Any]] = {
    "on_failure": [on_failure],
    "on_crashed": [on_crashed],
    "on_completion": [on_completion],
}
