"""``docs/reliability.md``'s table is what ``scripts/reliability_table.py`` makes of the committed run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers import ROOT

SCRIPT = ROOT / "scripts" / "reliability_table.py"
RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"


def test_the_document_matches_the_committed_run() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(RESULTS), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_every_scenario_ran_on_both_servers() -> None:
    """Each row ran on the embedded server and Soketi; the Reverb-like server's rows are those listed
    in the benchmark's ``REVERB_ROWS``, and every one of them ran there too."""
    from benchmarks.reliability import REVERB_ROWS

    rows = json.loads(RESULTS.read_text())["scenarios"]
    by_key: dict[str, set[str]] = {}
    for row in rows:
        by_key.setdefault(row["key"], set()).add(row["server"])
    assert by_key
    for key, servers in by_key.items():
        expected = {"embedded", "soketi"} | ({"reverb"} if key in REVERB_ROWS else set())
        assert servers == expected, (key, servers)


def test_no_row_lost_or_duplicated_an_event() -> None:
    rows = json.loads(RESULTS.read_text())["scenarios"]
    assert all(not row.get("events_lost") for row in rows), [r for r in rows if r.get("events_lost")]
    assert all(not row.get("duplicates") for row in rows), [r for r in rows if r.get("duplicates")]


def test_the_table_is_regenerated_between_its_markers(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- BEGIN reliability-table -->\nold\n<!-- END reliability-table -->\noutro\n")
    results = tmp_path / "r.json"
    results.write_text(
        json.dumps(
            {
                "meta": {"finished": "now", "machine": "m", "command": "c"},
                "scenarios": [
                    {
                        "scenario": "s",
                        "server": "embedded",
                        "load": "1 client",
                        "faults": "f",
                        "events_sent": 1200,
                        "events_received": 1000,
                        "events_recovered": 200,
                        "events_lost": 0,
                        "recovery_s": {"p50": 0.5},
                    },
                    {
                        "scenario": "t",
                        "server": "soketi",
                        "load": "",
                        "faults": "",
                        "error": "TimeoutError: x",
                    },
                ],
            }
        )
    )
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(results), "--doc", str(doc)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = doc.read_text()
    assert text.startswith("intro\n")
    assert text.endswith("outro\n")
    assert "old" not in text
    assert "| s | embedded | 1 client | f | 1,200 | 1,000 | 200 | p50 0.50 s | 0 lost |" in text
    assert "**failed**: TimeoutError: x" in text


@pytest.mark.parametrize("doc_text", ["no markers here\n", "<!-- END reliability-table -->\n"])
def test_a_document_without_the_section_is_an_error(tmp_path: Path, doc_text: str) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(doc_text)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(RESULTS), "--doc", str(doc)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "no <!-- BEGIN reliability-table -->" in done.stderr
