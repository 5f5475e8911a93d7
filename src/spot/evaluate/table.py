"""The paper-style table: one row per method, accuracies by group, forgetting against the base row."""

from __future__ import annotations

COLUMNS = ("in_domain", "ood", "prior")


def format_table(rows: list[tuple[str, dict[str, float]]], base_name: str = "Base") -> str:
    """Markdown table in percent. `rows` are (name, group accuracies); forgetting = base prior - row prior."""
    base = dict(rows).get(base_name)
    header = "| method | " + " | ".join(COLUMNS) + " | forgetting |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]
    for name, groups in rows:
        cells = [f"{100 * groups[c]:.1f}" if c in groups else "-" for c in COLUMNS]
        if base is not None and "prior" in groups and "prior" in base:
            forgetting = f"{100 * (base['prior'] - groups['prior']):+.1f}"
        else:
            forgetting = "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {forgetting} |")
    return "\n".join(lines)


def describe_scoring(sampling, suites) -> str:
    """The caption every score table carries: how completions were drawn and how many, per suite."""
    per = ", ".join(f"{s.name} {len(s.prompts)}" + (f" x {s.n_samples}" if s.n_samples > 1 else "") for s in suites)
    return f"scored {sampling.describe()}; problems: {per}"

