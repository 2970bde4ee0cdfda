"""Drives kontiki-tui 2.1.2 headless (Textual's pilot, ``App.run_test()``) and prints its tables.

Usage: tui_driver.py --wait SERVICE [--wait SERVICE ...] [--flow FLOW_ID] [--log TEXT ...]
                     [--timeout SECS]

HOME must point at a directory with ``.config/kontiki_tui.yaml`` (``amqp.url``). The driver
switches tabs through ``TabbedContent.active`` and, on each of Services, Entrypoints, Events,
Flows and Exceptions, waits until the tables show every ``--wait`` service (and the flow id on
Flows, the exceptions on Exceptions); with ``--log``, it opens the Logs tab and refreshes it until
the log view shows every ``--log`` text (``logs.directory`` of the TUI config); then prints one
JSON line
``{"services_table": [[...], ...], ...}`` and exits. Logs go to stderr.
"""

import argparse
import asyncio
import json
import sys
import time

from textual.widgets import DataTable, RichLog, TabbedContent, TabPane

from kontiki_tui.app import KontikiTuiApp


def rows(app, table_id):
    try:
        table = app.query_one(f"#{table_id}", DataTable)
    except Exception:
        return []
    out = []
    for i in range(table.row_count):
        out.append([str(c) for c in table.get_row_at(i)])
    return out


async def show(app, pilot, widget_id):
    tabbed = app.query_one(TabbedContent)
    for pane in tabbed.query(TabPane):
        if pane.query(f"#{widget_id}"):
            tabbed.active = pane.id
            await pilot.pause()
            return pane.id
    raise SystemExit(f"no tab holds #{widget_id}")


async def wait_tables(app, pilot, widget_id, table_ids, done, deadline):
    await show(app, pilot, widget_id)
    last = {}
    while time.monotonic() < deadline:
        last = {t: rows(app, t) for t in table_ids}
        if done(last):
            return last, True
        await pilot.pause(0.5)
        # Press `r` (refresh) now and then: the TUI does not poll.
        await pilot.press("r")
    return last, False


def log_text(app):
    try:
        widget = app.query_one("#logs", RichLog)
    except Exception:
        return ""
    return "\n".join("".join(seg.text for seg in strip) for strip in widget.lines)


async def wait_logs(app, pilot, needles, deadline):
    await show(app, pilot, "logs")
    from kontiki_tui.components.log import LogTab

    text = ""
    while time.monotonic() < deadline:
        app.query_one("#log", LogTab).action_refresh_logs()
        await pilot.pause(1.0)
        text = log_text(app)
        if all(n in text for n in needles):
            return text, True
    return text, False


def mentions(table, needles):
    text = json.dumps(table)
    return all(n in text for n in needles)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wait", action="append", default=[])
    ap.add_argument("--flow", default=None)
    ap.add_argument("--exception", default=None)
    ap.add_argument("--log", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=40.0)
    args = ap.parse_args()
    app = KontikiTuiApp()
    result = {"ok": {}}
    async with app.run_test(size=(220, 60)) as pilot:
        deadline = time.monotonic() + args.timeout
        # Short display names: the TUI may truncate long service names; match a prefix.
        needles = [w[:20] for w in args.wait]
        tabs = [
            ("services", ["services_table"], lambda t: mentions(t["services_table"], needles)),
            ("entrypoints", ["entrypoints_services_table", "entrypoints_table"],
             lambda t: mentions(t["entrypoints_services_table"], needles)),
            ("events", ["events_table"], lambda t: len(t["events_table"]) > 0),
            ("flows", ["flows_table", "hops_table"],
             lambda t: args.flow is None or mentions(t["flows_table"], [args.flow[:12]])),
            ("exceptions", ["exceptions_table"],
             lambda t: args.exception is None or mentions(t["exceptions_table"], [args.exception])),
        ]
        for widget, tables, done in tabs:
            got, ok = await wait_tables(app, pilot, widget, tables, done, deadline)
            result.update(got)
            result["ok"][widget] = ok
        # The hops of the chained flow: highlight its row in flows_table.
        if args.flow is not None:
            await show(app, pilot, "flows")
            table = app.query_one("#flows_table", DataTable)
            # Other traffic on the vhost adds flows and the table can reorder under the cursor:
            # move it to the flow's row again until the hops shown are that flow's (bounded).
            hops = []
            for _ in range(20):
                for i, row in enumerate(rows(app, "flows_table")):
                    if any(args.flow[:12] in c for c in row):
                        table.focus()
                        table.move_cursor(row=i)
                        break
                await pilot.pause(0.5)
                hops = rows(app, "hops_table")
                if len(hops) >= 3 and any("chain" in c for row in hops for c in row):
                    break
            result["hops_table"] = hops
        if args.log:
            text, ok = await wait_logs(app, pilot, args.log, deadline)
            result["log_text"] = text[-4000:]
            result["ok"]["logs"] = ok
        await app.action_quit()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
