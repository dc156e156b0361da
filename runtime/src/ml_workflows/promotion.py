"""Champion / challenger: a newly trained model replaces the current one only when it is not worse.

Every trained model that passes the quality gate is committed under ``<data>/models/<run_id>/``
(manifest last, as any result). Which of them scoring uses is a separate, atomic decision: the
``_LATEST`` pointer, one small JSON object written in one go (a rename on a local disk, one ``PUT``
on S3) and only ever naming a committed model. So no reader can see ``_LATEST`` pointing at a
half-written model, whatever fails when.

The rule (:func:`compare`): the challenger and the champion (the model ``_LATEST`` names) are
evaluated on the same rows — the training run's holdout, or the fixed reference dataset
``PIPELINE_REFERENCE_DATASET_URL`` names — with ``model.evaluate``; the challenger is promoted
unless it is worse on ``QUALITY_GATE.metric`` (in the gate's direction) by more than
``PIPELINE_PROMOTION_TOLERANCE``. Otherwise it stays a committed *candidate*, with the reason.

Models are compared only when they were trained on the same kind of data and schema: a model trained on the
sample data (``sample_data.py``'s synthetic rows) never replaces one trained on your data by comparison — it
stays a candidate, saying why — and a current model trained on another schema cannot score, so the new one
replaces it without a comparison. (The sample pipeline keeps its own data URL besides: ``Settings.for_sample``.)

``_LATEST`` also holds the earlier champions (``history``), so :func:`rollback` returns to the
previous one in one write; :func:`promote` makes a given committed candidate the champion. Each
decision, promotion and rollback is recorded as one JSON object under ``<data>/models/_EVENTS/``.
"""

from __future__ import annotations

import math
import posixpath
import secrets
from datetime import UTC, datetime
from typing import Any

from . import storage
from .quality import QualityGate

EVENTS = "_EVENTS"
HISTORY_KEPT = 50  # earlier champions remembered in _LATEST (rollback depth)


class PromotionError(ValueError):
    """A promotion or rollback that cannot be done (not a committed model, nothing to roll back to)."""


def compare(
    gate: QualityGate,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    tolerance: float,
    *,
    current_model_url: str | None = None,
    evaluated_on: str = "holdout",
    champion_problem: str | None = None,
    not_comparable: str | None = None,
) -> dict[str, Any]:
    """The decision, as a JSON-able dict: ``promote`` (bool), ``reason`` and the figures behind it.

    ``champion`` is ``None`` when there is no current model, or when it cannot be used any more
    (``champion_problem`` says why: trained on another schema or other library versions, unreadable, trained
    on sample data while the challenger was trained on yours); the challenger is then promoted.
    ``not_comparable`` says why the challenger must not be compared with a usable champion (trained on sample
    data, the champion on yours): it stays a candidate.
    """
    metric, higher = gate.metric, gate.higher_is_better
    if tolerance < 0 or not math.isfinite(tolerance):
        raise PromotionError(f"PIPELINE_PROMOTION_TOLERANCE={tolerance}: must be a finite number >= 0")
    result: dict[str, Any] = {
        "metric": metric,
        "higher_is_better": higher,
        "tolerance": tolerance,
        "evaluated_on": evaluated_on,
        "current_model_url": current_model_url,
        "challenger": dict(challenger),
        "champion": dict(champion) if champion is not None else None,
    }
    if metric not in challenger:
        raise PromotionError(
            f"model.evaluate returned no {metric!r} (QUALITY_GATE.metric); it returned {sorted(challenger)}"
        )
    new = float(challenger[metric])
    if not_comparable:
        reason = f"not compared: {not_comparable}; promote it by hand if that is what you want"
        return {**result, "champion": None, "promote": False, "difference": None, "reason": reason}
    if champion_problem:
        reason = f"not compared: {champion_problem}; the new model replaces it"
        return {**result, "champion": None, "promote": True, "difference": None, "reason": reason}
    if champion is None:
        return {**result, "promote": True, "difference": None, "reason": "no current model: the new model is the first"}
    if metric not in champion:
        why = f"the current model's evaluate returned no {metric!r}: the new model replaces it"
        return {**result, "promote": True, "difference": None, "reason": why}
    old = float(champion[metric])
    gain = (new - old) if higher else (old - new)  # > 0: the challenger is better
    result["difference"] = round(new - old, 6)
    direction = "higher" if higher else "lower"
    figures = f"{metric} {new:.4f} vs {old:.4f} on the {evaluated_on} ({direction} is better, tolerance {tolerance:g})"
    if gain >= -tolerance - 1e-12:
        verdict = "better" if gain > 0 else ("as good" if gain == 0 else "worse, within the tolerance")
        return {**result, "promote": True, "reason": f"{verdict}: {figures}"}
    return {**result, "promote": False, "reason": f"worse by {-gain:.4f}, over the tolerance: {figures}"}


def data_conflict(challenger_on_sample: bool | None, champion_on_sample: bool | None) -> tuple[str, bool] | None:
    """Why two models' training data rule out a comparison, and whether the challenger replaces the champion
    anyway; ``None`` when they may be compared (same kind of data, or unknown for a model of an earlier release).

    Sample data (synthetic rows) against your data: a figure on one says nothing about the other. A model of
    yours replaces a sample one; a sample model never replaces one of yours on its own.
    """
    if challenger_on_sample is None or champion_on_sample is None or challenger_on_sample == champion_on_sample:
        return None
    if champion_on_sample:
        return "the current model was trained on the sample data (sample_data.py), the new one on your data", True
    why = "the new model was trained on the sample data (sample_data.py), the current one on your data"
    return why, False


# -- the current-model pointer (_LATEST) and its history -------------------------------------------------------------
def state(models_root: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``_LATEST`` as a dict (``latest``, ``history``); ``{}`` when nothing was promoted yet."""
    try:
        data = storage.read_json(storage.join(models_root, storage.LATEST), storage_options)
    except FileNotFoundError:
        return {}
    return {**data, "history": list(data.get("history", []))}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def record(models_root: str, event: dict[str, Any], storage_options: dict[str, Any] | None = None) -> str:
    """Write one event (decision, promotion, rollback) as its own JSON object; returns its URL."""
    now = datetime.now(UTC)
    at, stamp = now.isoformat(), now.strftime("%Y%m%dT%H%M%S%fZ")  # names sort in time order
    url = storage.join(models_root, EVENTS, f"{stamp}-{event['action']}-{secrets.token_hex(3)}.json")
    storage.write_json(url, {"at": at, **event}, storage_options)
    return url


def events(models_root: str, storage_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every recorded event, oldest first."""
    fs, path = storage.filesystem(storage.join(models_root, EVENTS), storage_options)
    fs.invalidate_cache()
    if not fs.exists(path):
        return []
    names = sorted(p for p in fs.ls(path, detail=False) if p.endswith(".json"))
    protocol = models_root.split("://", 1)[0] + "://" if "://" in models_root else ""
    return [storage.read_json(protocol + p, storage_options) for p in names]


def _set_current(
    models_root: str, latest: str, history: list[str], event: dict[str, Any], storage_options: dict[str, Any] | None
) -> dict[str, Any]:
    pointer = {"latest": latest, "history": history[-HISTORY_KEPT:], "at": _now(), **event}
    storage.write_json(storage.join(models_root, storage.LATEST), pointer, storage_options)  # the one atomic write
    record(models_root, {**event, "model": latest, "previous": history[-1] if history else None}, storage_options)
    return pointer


def _committed_model(url: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    try:
        manifest = storage.read_manifest(url, storage_options)
    except storage.NotCommittedError as exc:
        raise PromotionError(f"{url} is not a committed model (no {storage.MANIFEST}): nothing changed") from exc
    if manifest.get("kind") != "model":
        raise PromotionError(f"{url} holds a {manifest.get('kind')!r} result, not a model: nothing changed")
    return manifest


def promote(
    models_root: str, model_url: str, reason: str, storage_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Make the committed model at ``model_url`` the champion (``_LATEST``); the old one goes to history."""
    model_url = model_url.rstrip("/")
    if posixpath.dirname(model_url) != models_root.rstrip("/"):
        raise PromotionError(f"{model_url} is not a model of {models_root}: nothing changed")
    _committed_model(model_url, storage_options)
    current = state(models_root, storage_options)
    history = [u for u in current.get("history", []) if u != model_url]
    if current.get("latest") and current["latest"] != model_url:
        history.append(current["latest"])
    return _set_current(models_root, model_url, history, {"action": "promote", "reason": reason}, storage_options)


def rollback(models_root: str, reason: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return to the previous champion (the last one in ``_LATEST``'s history) in one atomic write."""
    current = state(models_root, storage_options)
    history = current.get("history", [])
    if not current.get("latest") or not history:
        raise PromotionError(f"no previous model under {models_root} to roll back to: nothing changed")
    previous = history[-1]
    _committed_model(previous, storage_options)
    event = {"action": "rollback", "reason": reason, "rolled_back": current["latest"]}
    return _set_current(models_root, previous, history[:-1], event, storage_options)
