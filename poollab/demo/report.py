"""Runs the chosen experiments with progress bars and reports them as tables or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from poollab.demo import machine
from poollab.demo.context import DemoContext
from poollab.demo.result import DemoResult, Verdict
from poollab.demo.runner import run_many
from poollab.demo.table import format_cell, print_result
from poollab.measure.progress import Bars


class Report:
    def __init__(self, json_output: bool, command: str = "") -> None:
        self.json_output = json_output
        self.command = command
        self.stdout = Console()
        self.stderr = Console(stderr=True)

    def run(
        self, names: list[str], quick: bool, out_dir: Path, charts: bool, python: str = "auto"
    ) -> list[DemoResult]:
        described = machine.describe()
        if not self.json_output:
            self.stdout.print(
                "[bold]poollab demo[/bold] on "
                + ", ".join(f"{k} {format_cell(v)}" for k, v in described.items())
                + (" [yellow](quick mode)[/yellow]" if quick else "")
                + "\n"
            )
        with Bars(self.stderr) as progress:
            ctx = DemoContext(
                quick=quick, out_dir=out_dir, progress=progress, charts=charts, python=python
            )
            results = run_many(names, ctx, on_result=None if self.json_output else self._show)
        if self.json_output:
            document = self.document(described, results)
            # the load when the run ended too: other work on the machine colours every figure
            document["load_after"] = machine.load()
            print(json.dumps(document, indent=2))
        else:
            self._verdicts(results)
        return results

    def document(self, described: dict[str, Any], results: list[DemoResult]) -> dict[str, Any]:
        return {
            "command": self.command,
            "machine": described,
            "results": [result.to_json() for result in results],
        }

    @staticmethod
    def exit_code(results: list[DemoResult]) -> int:
        # a claim that did not hold is a finding, not a failure; a crashed experiment is
        return 1 if any(r.verdict is Verdict.ERROR for r in results) else 0

    def _show(self, result: DemoResult) -> None:
        print_result(result, self.stdout)

    def _verdicts(self, results: list[DemoResult]) -> None:
        if len(results) > 1:
            self.stdout.print("[bold]verdicts[/bold]")
            for result in results:
                self.stdout.print(f"  {result.name:<22} {result.verdict.value}")
        after = ", ".join(f"{k} {format_cell(v)}" for k, v in machine.load().items())
        self.stdout.print(f"[dim]machine load when the run ended: {after}[/dim]")
