"""``quvel timeline FILE``: print (or follow) a store timeline exported by ``History.export``."""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a JSON Lines timeline written by History.export()")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing commits appended to FILE")
    parser.add_argument("--store", default=None, help="only commits of this store id")
    parser.add_argument("--state", action="store_true", help="also show the state after each commit")
    parser.add_argument("--no-color", action="store_true", help="plain text")


def _row(record: dict[str, Any], show_state: bool) -> list[str]:
    call = record.get("action") or ""
    if call:
        args = [json.dumps(a) for a in record.get("args", [])]
        args += [f"{k}={json.dumps(v)}" for k, v in record.get("kwargs", {}).items()]
        call = f"{call}({', '.join(args)})"
    flags = "travel" if record.get("travel") else ("" if record.get("undoable", True) else "no-undo")
    if not record.get("active", True):
        flags = (flags + " undone").strip()
    row = [
        str(record.get("seq", "")),
        datetime.fromtimestamp(float(record.get("time", 0))).strftime("%H:%M:%S.%f")[:-3],
        str(record.get("store", "")),
        str(record.get("kind", "")),
        call,
        ", ".join(record.get("changed", [])) or "*",
        flags,
    ]
    if show_state:
        row.append(json.dumps(record.get("state"), ensure_ascii=False))
    return row


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(no_color=args.no_color, highlight=False)
    path: Path = args.file
    if not path.exists():
        console.print(f"quvel timeline: {path} does not exist")
        return 2
    columns = ["#", "time", "store", "kind", "action", "changed", "flags"] + (["state"] if args.state else [])
    styles = {"travel": "magenta", "no-undo": "yellow", "undone": "dim"}

    def table_of(lines: list[str]) -> Table:
        table = Table(*columns, show_header=True, header_style="bold cyan", box=None, pad_edge=False)
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                table.add_row("?", "", "", "", f"line {number} is not JSON", "", "", style="red")
                continue
            if not isinstance(record, dict) or "quvel_timeline" in record:
                continue
            if args.store is not None and record.get("store") != args.store:
                continue
            row = _row(record, args.state)
            style = next((s for flag, s in styles.items() if flag in row[6]), None)
            table.add_row(*row, style=style)
        return table

    with path.open(encoding="utf-8") as f:
        console.print(table_of(f.read().splitlines()))
        if not args.follow:
            return 0
        pending = ""
        while True:  # tail: print whole lines as they are appended
            chunk = f.read()
            if not chunk:
                time.sleep(0.2)
                continue
            pending += chunk
            *complete, pending = pending.split("\n")
            if complete:
                console.print(table_of(complete))
