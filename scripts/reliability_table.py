#!/usr/bin/env python3
"""Regenerate the one table of ``docs/reliability.md`` from a ``benchmarks/reliability.py`` run.

    python scripts/reliability_table.py [RESULTS_JSON] [--doc docs/reliability.md] [--check]

RESULTS_JSON defaults to ``benchmarks/results/reliability.json``.

The table sits between ``<!-- BEGIN reliability-table -->`` and ``<!-- END reliability-table -->``;
everything else in the document is left as written. ``--check`` exits 1 when the document is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"
DEFAULT_DOC = ROOT / "docs" / "reliability.md"
BEGIN = "<!-- BEGIN reliability-table -->"
END = "<!-- END reliability-table -->"

COLUMNS = (
    "Scenario",
    "Server",
    "Load",
    "Faults injected",
    "Events sent",
    "Events received",
    "Recovered by reload",
    "Recovery time",
    "Notes",
)


def _recovery(row: dict[str, Any]) -> str:
    if row.get("error"):
        return f"**failed**: {str(row['error'])[:100]}"
    rec = row.get("recovery_s")
    if rec is None:
        return "**did not recover**"
    if isinstance(rec, int | float):
        return f"{rec:.2f} s"
    parts = []
    for key in ("p50", "p95", "max"):
        if key in rec:
            parts.append(f"{key} {rec[key]:.2f} s")
    return ", ".join(parts) or "n/a"


def _notes(row: dict[str, Any]) -> str:
    """The scenario's own measure, beside the common columns."""
    notes = []
    lost = row.get("events_lost")
    if isinstance(lost, int) and row.get("events_sent"):
        notes.append(f"**{lost:,} lost**" if lost else "0 lost")
    duplicates = row.get("duplicates")
    if (
        "failed_reloads" in row
        or "auth_slowed" in row
        or "members_consistent" in row
        or "tls_attempts" in row
        or "subscribed_in_blackhole" in row
    ) and isinstance(duplicates, int):
        notes.append(f"**{duplicates:,} duplicates**" if duplicates else "0 duplicates")
    if "failed_reloads" in row:
        notes.append(
            f"{row['failed_reloads']} failed reloads retried; resubscribed "
            f"{row['server_back_s']:.2f} s after the kill; recovery: from the API's return until "
            f"every store is synced"
        )
    if "auth_slowed" in row:
        notes.append(
            f"{row['auth_slowed']} auth requests slowed or failed, {row['auth_errors']} AuthorizationErrors"
        )
    if "members_consistent" in row:
        seen = row.get("members_seen") or []
        notes.append(
            ("members consistent" if row["members_consistent"] else "**members inconsistent**")
            + f": every client should see {row['members_expected']}, saw "
            + f"{min(seen, default=0)}-{max(seen, default=0)}"
        )
    if "subscribed_in_blackhole" in row:
        notes.append(f"{row['subscribed_in_blackhole']} subscriptions answered inside the blackhole")
    if "tls_attempts" in row:
        notes.append(
            f"stopped with CertificateError after {row['stopped_after_s']:.2f} s (state "
            f"{row['client_state']}); {row['tls_attempts']} connection in {row['watched_s']:g} s, no retry "
            f"loop; recovery: from the fix (ca_file=) until subscribed"
        )
    if row.get("detection_s") is not None:
        notes.append(
            f"dead link noticed after {row['detection_s']:.2f} s (limit {row['detection_limit_s']:g} s)"
        )
    if "attempts_per_client" in row:
        notes.append(f"{row['attempts_per_client']} connect attempts per client while refused")
    if "transport_errors" in row:
        notes.append(f"{row['transport_errors']} typed TransportErrors")
    if "reconnects" in row:
        notes.append(f"{row['reconnects']} reconnects, {row['client_bytes_sent']} bytes of pings")
    if "protocol_errors" in row:
        notes.append(f"{row['cuts']} cuts, {row['protocol_errors']} parse errors surfaced")
    if "peak_100ms" in row:
        spread = row.get("resubscribed_after_s", {})
        notes.append(
            f"busiest 100 ms: {row['peak_100ms']} clients ({row['peak_100ms_share']:.0%}); "
            f"p10-p90 {spread.get('p10', 0):.2f}-{spread.get('p90', 0):.2f} s"
        )
    if "auth_errors" in row:
        notes.append(f"{row['auth_errors']} auth failures during the outage")
    if "leaks" in row:
        leaks = row["leaks"]
        grown = ", ".join(f"{k} +{v}" for k, v in leaks.items())
        notes.append("no growth in tasks, sockets, handlers" if not leaks else f"growth: {grown}")
        if "server_channels" in row:
            notes.append(
                f"server: {sum(row['server_channels'].values())} subscriptions on "
                f"{len(row['server_channels'])} channels, {row.get('open_connections')} connection"
            )
    return "; ".join(notes)


def _count(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(results: dict[str, Any]) -> str:
    """The markdown table (with a one-line provenance note) for a results document."""
    rows = results.get("scenarios")
    if not isinstance(rows, list) or not rows:
        raise ValueError("results hold no scenarios")
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in rows:
        cells = [
            row["scenario"],
            row.get("server", ""),
            row.get("load", ""),
            row.get("faults", ""),
            _count(row.get("events_sent")),
            _count(row.get("events_received")),
            _count(row.get("events_recovered")),
            _recovery(row),
            _notes(row),
        ]
        lines.append("| " + " | ".join(_cell(str(c)) for c in cells) + " |")
    meta = results.get("meta", {})
    note = (
        f"\n_Run {meta.get('finished', '?')} on {meta.get('machine', '?')}, "
        f"`{meta.get('command', 'python benchmarks/reliability.py')}`; "
        f"regenerate with `python scripts/reliability_table.py`._"
    )
    return "\n".join(lines) + "\n" + note


def update_document(doc: str, table: str) -> str:
    start = doc.find(BEGIN)
    end = doc.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the document has no {BEGIN} ... {END} section")
    return doc[: start + len(BEGIN)] + "\n" + table + "\n" + doc[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("results", nargs="?", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is not up to date")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text(encoding="utf-8"))
        table = render_table(results)
        doc = args.doc.read_text(encoding="utf-8")
        new = update_document(doc, table)
    except (OSError, ValueError, KeyError) as exc:
        print(f"reliability_table: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if new != doc:
            print(f"{args.doc} is stale: run python scripts/reliability_table.py", file=sys.stderr)
            return 1
        return 0
    if new != doc:
        args.doc.write_text(new, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
