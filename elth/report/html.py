"""A markdown table of elth's (table2.md, claims.md, lmc.md, a FLOPs table) as an HTML page of its own.

Snakemake's report (`snakemake --report`) shows an HTML result in place but offers a markdown file
only as a download, so each CLI that writes a table for a reader writes this page beside it when
given `--html`. The markdown is elth's own and uses a small subset, which is all this reads: `#`
headings, pipe tables (`---:` aligns a column right), `- ` lists, paragraphs, and `code` spans.
"""

from __future__ import annotations

import html
import re

# Characters beyond which a cell may wrap.
LONG = 30
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1f2937; }
table { border-collapse: collapse; margin: 0.8em 0 1.2em; font-size: 14px; }
th, td { border: 1px solid #d1d5db; padding: 4px 10px; text-align: left; vertical-align: top; white-space: nowrap; }
th.long { white-space: normal; }
td.long { white-space: normal; min-width: 12em; }
th { background: #f3f4f6; }
tr:nth-child(even) td { background: #f9fafb; }
td.right, th.right { text-align: right; font-variant-numeric: tabular-nums; }
p, li { max-width: 60em; line-height: 1.45; }
code { background: #f3f4f6; padding: 0 3px; }
"""


def inline(text: str) -> str:
    """Escaped text with `code` spans."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table(lines: list[str]) -> str:
    """A pipe table (header, separator, rows) as an HTML table. A cell of a few words never breaks (a
    model's name, a number with its spread); a longer one, a sentence, wraps."""
    header, separator, *rows = lines
    right = [c.endswith(":") and not c.startswith(":") for c in cells(separator)]

    def row(line: str, tag: str) -> str:
        def attributes(text: str, r: bool) -> str:
            classes = " ".join(c for c, on in (("right", r), ("long", len(text) > LONG)) if on)
            return f" class='{classes}'" if classes else ""
        return "<tr>" + "".join(f"<{tag}{attributes(c, r)}>{inline(c)}</{tag}>"
                                for c, r in zip(cells(line), right)) + "</tr>"
    return ("<table><thead>" + row(header, "th") + "</thead><tbody>"
            + "".join(row(line, "td") for line in rows) + "</tbody></table>")


def convert(markdown: str, title: str) -> str:
    """The page: blocks separated by blank lines, each a heading, a table, a list or a paragraph."""
    body = []
    for block in re.split(r"\n\s*\n", markdown.strip()):
        lines = block.splitlines()
        if heading := re.fullmatch(r"(#{1,6}) (.*)", lines[0]):
            level = len(heading[1])
            body.append(f"<h{level}>{inline(heading[2])}</h{level}>")
            lines = lines[1:]
        if not lines:
            continue
        if len(lines) > 1 and re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*", lines[1]):
            body.append(table(lines))
        elif all(line.startswith("- ") for line in lines):
            body.append("<ul>" + "".join(f"<li>{inline(line[2:])}</li>" for line in lines) + "</ul>")
        else:
            body.append(f"<p>{inline(' '.join(lines))}</p>")
    return (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
