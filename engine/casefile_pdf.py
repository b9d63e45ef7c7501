"""The case file (案件卷宗) as a PDF to archive: the facts of :func:`engine.casefile.case_file`,
a CJK font embedded (subset), page numbers, the signed tree head and each event's leaf
hash and leaf index printed, so that the paper copy can be checked against a case bundle
(docs/auditors.md). Drawn with fpdf2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from domain.errors import NotFound

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),  # Debian fonts-wqy-microhei
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),  # fonts-wqy-zenhei
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),  # fonts-noto-cjk
)
CJK = "cjk"
MONO = "Courier"  # hashes: a standard PDF font, text a reader can copy and compare
LEFT = (XPos.LMARGIN, YPos.NEXT)


def cjk_font(configured: Path | None) -> Path:
    """The font file to embed: ``FENGQIAO_CJK_FONT``, else the first Debian CJK font found."""
    for path in (configured,) if configured else FONT_CANDIDATES:
        if path is not None and path.is_file():
            return path
    raise NotFound(
        "no CJK font to embed in the PDF: install Debian's fonts-wqy-microhei or set "
        f"FENGQIAO_CJK_FONT (looked for {', '.join(str(p) for p in FONT_CANDIDATES)})",
        resource="font",
    )


class CaseFilePdf(FPDF):
    def __init__(self, case_id: str, font: Path, pages: int) -> None:
        super().__init__(format="A4")
        self.case_id, self.total = case_id, pages  # the page count, from a first rendering
        self.add_font(CJK, fname=str(font))
        self.set_auto_page_break(auto=True, margin=18)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font(CJK, size=8)
        self.cell(0, 5, f"案件卷宗 {self.case_id} · 第 {self.page_no()} 页，共 {self.total} 页")
        self.set_x(self.l_margin)
        self.set_font(MONO, size=8)
        self.cell(0, 5, f"page {self.page_no()} / {self.total}", align="R")

    def heading(self, text: str) -> None:
        self.ln(2)
        self.set_font(CJK, size=12)
        self.cell(0, 8, text, new_x=LEFT[0], new_y=LEFT[1])

    def line_text(self, text: str, size: float = 9, font: str = CJK) -> None:
        self.set_font(font, size=size)
        self.multi_cell(0, size * 0.5, text, new_x=LEFT[0], new_y=LEFT[1])

    def pairs(self, rows: list[tuple[str, str]]) -> None:
        with self.table(
            col_widths=(30, 150), first_row_as_headings=False, text_align="LEFT"
        ) as table:
            self.set_font(CJK, size=9)
            for label, value in rows:
                table.row((label, value))


def _particulars(data: dict[str, Any]) -> list[tuple[str, str]]:
    case, labels = data["case"], data["labels"]
    return [
        ("标题", str(case.get("title") or "")),
        ("类别", f"{labels['kind']} · {case.get('category') or ''} · {labels['severity']}"),
        ("状态", labels["status"]),
        ("区域", f"{labels['region']}（上报于 {labels['origin_region']}）"),
        ("承办单位", str(labels["unit"] or "")),
        ("发生 / 上报", f"{data['occurred']} / {data['reported']}"),
    ]


def _event_text(entry: dict[str, Any]) -> str:
    actor = entry["actor"]
    who = " ".join(
        str(x) for x in (actor.get("id"), actor.get("role"), entry.get("unit_name")) if x
    )
    details = "；".join(f"{label}：{value}" for label, value in entry["details"])
    return (
        f"v{entry['version']} · 位置 {entry['position']} · {entry['label']} · {who}\n"
        f"发生 {entry['occurred']} · 记录 {entry['recorded']}" + (f"\n{details}" if details else "")
    )


def _tree_head(pdf: CaseFilePdf, data: dict[str, Any]) -> None:
    verification = data["verification"]
    if pdf.get_y() > pdf.h - 75:  # the tree head block on one page
        pdf.add_page()
    pdf.heading("防篡改校验与签名树头")
    pdf.line_text(
        f"本案校验：{'通过' if verification['ok'] else '未通过'}（{verification['entries']} 条记录）"
        + ("" if verification["ok"] else f"：{verification['finding']['message']}")
    )
    head = data.get("checkpoint")
    if not head:
        pdf.line_text("尚无签名树头")
        return
    pdf.line_text(
        f"签名树头（C2SP checkpoint）：{head['origin']} · {head['size']} 条记录 · {head['time']} · "
        f"密钥指纹 {head['key_id']}"
    )
    pdf.line_text(f"Merkle root {head['root']}", size=8, font=MONO)
    pdf.line_text("签名树头全文（signed note）：", size=8)
    pdf.line_text(head["note"], size=7)


def render_case_file_pdf(data: dict[str, Any], font: Path) -> bytes:
    """The case file as PDF bytes (A4): drawn twice, the second time with the page count."""
    first = _draw(data, font, 0)
    return bytes(_draw(data, font, first.pages_count).output())


def _draw(data: dict[str, Any], font: Path, pages: int) -> CaseFilePdf:
    case_id = str(data["case"]["id"])
    pdf = CaseFilePdf(case_id, font, pages)
    pdf.add_page()
    pdf.set_font(CJK, size=18)
    pdf.cell(0, 12, "案 件 卷 宗", align="C", new_x=LEFT[0], new_y=LEFT[1])
    pdf.line_text(f"案件编号 {case_id} · 生成于 {data['generated_at']}（北京时间）", size=8)
    pdf.heading("基本情况")
    pdf.pairs(_particulars(data))
    if data["parties"]:
        pdf.heading("当事人")
        pdf.pairs(
            [
                (p["role_label"], f"{p.get('name') or ''} {p.get('phone') or ''}")
                for p in data["parties"]
            ]
        )
    pdf.heading("办理时间线（每条记录的叶哈希可与案件证据包核对）")
    for entry in data["timeline"]:
        pdf.line_text(_event_text(entry))
        pdf.line_text(f"leaf {entry['leaf_index']}  {entry['entry_hash']}", size=7.5, font=MONO)
        pdf.ln(1.5)
    if data["clocks"]:
        pdf.heading("时限")
        pdf.pairs(
            [
                (str(c["title"]), f"{c['state_label']} · 开始 {c['started']} · 期限 {c['due']}")
                for c in data["clocks"]
            ]
        )
    _tree_head(pdf, data)
    return pdf
