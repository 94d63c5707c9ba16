"""A tiny document model rendered twice: ``report.md`` (figures linked by relative path) and a
self-contained ``report.html`` (figures embedded as base64 data URIs)."""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Document:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: list[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", list(header), [list(r) for r in rows]))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("img", Path(path), caption))

    @property
    def figures(self) -> list[Path]:
        return [b[1] for b in self.blocks if b[0] == "img"]

    # -- rendering ----------------------------------------------------------------------
    def markdown(self, base: Path) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            kind = b[0]
            if kind == "h2":
                out += [f"## {b[1]}", ""]
            elif kind == "p":
                out += [b[1], ""]
            elif kind == "ul":
                out += [f"- {item}" for item in b[1]] + [""]
            elif kind == "table":
                cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
                out.append("| " + " | ".join(cell(h) for h in b[1]) + " |")
                out.append("|" + "|".join("---" for _ in b[1]) + "|")
                out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in b[2]]
                out.append("")
            elif kind == "img":
                out += [f"![{_alt(b[1])}]({_rel(b[1], base)})", "", f"*{b[2]}*", ""]
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        e = html.escape
        out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(self.title)}</title>",
               "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
               "img{max-width:100%;height:auto;border:1px solid #ddd}figure{margin:1.5em 0}figcaption{color:#555;font-size:.9em}"
               "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
               "th{background:#f3f3f3}code{background:#f3f3f3;padding:0 .2em}</style></head><body>", f"<h1>{e(self.title)}</h1>"]
        for b in self.blocks:
            kind = b[0]
            if kind == "h2":
                out.append(f"<h2>{e(b[1])}</h2>")
            elif kind == "p":
                out.append(f"<p>{_inline(b[1])}</p>")
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b[1]) + "</ul>")
            elif kind == "table":
                head = "".join(f"<th>{e(str(h))}</th>" for h in b[1])
                body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in b[2])
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
                out.append(f'<figure><img alt="{e(_alt(b[1]))}" src="data:image/png;base64,{data}">'
                           f"<figcaption>{e(b[2])}</figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"

    def write(self, out: Path) -> tuple[Path, Path]:
        md, page = out / "report.md", out / "report.html"
        md.write_text(self.markdown(out), encoding="utf-8")
        page.write_text(self.html(), encoding="utf-8")
        return md, page


def _rel(path: Path, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_posix()


def _alt(path: Path) -> str:
    return Path(path).stem.replace("_", " ")


def _inline(text: str) -> str:
    """Escape, then render markdown's `code` and **bold** spans (the only inline markup the report uses)."""
    parts = html.escape(text).split("`")
    out = []
    for i, p in enumerate(parts):
        if i % 2:
            out.append(f"<code>{p}</code>")
        else:
            bold = p.split("**")
            out.append("".join(f"<strong>{q}</strong>" if j % 2 else q for j, q in enumerate(bold)))
    return "".join(out)
