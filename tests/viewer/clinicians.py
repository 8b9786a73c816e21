"""Several clinicians on one server, in one real Chromium: eight different photographs and
the browser side of uploading them all at the same moment. Used by tests/viewer/test_concurrency.py
and by the users benchmark (``python -m tests.viewer.users_bench``)."""

from __future__ import annotations

import asyncio
import io
import time

from PIL import Image, ImageEnhance

from tests.viewer.live_server import CHROMIUM_ARGS, HAS_TEXT, REPO, SETTLED, UPLOAD

RETINA = REPO / "tests" / "data" / "retina.jpg"
SYNTHETIC = REPO / "assets" / "samples" / "synthetic"


def encode(im: Image.Image, fmt_: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt_, **kw)
    return buf.getvalue()


def eight_photographs() -> dict[str, tuple[bytes, str]]:
    """Eight genuinely different inputs: the real photograph, transformed, and two synthetic samples."""
    src = Image.open(RETINA).convert("RGB")
    w, h = src.size
    out = {
        "original.jpg": (RETINA.read_bytes(), "image/jpeg"),
        "mirrored.png": (encode(src.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG"), "image/png"),
        "rotated.jpg": (encode(src.transpose(Image.Transpose.ROTATE_90), quality=92), "image/jpeg"),
        "flipped.jpg": (encode(src.transpose(Image.Transpose.FLIP_TOP_BOTTOM), quality=92), "image/jpeg"),
        "brighter.png": (encode(ImageEnhance.Brightness(src).enhance(1.35), "PNG"), "image/png"),
        "more-colour.jpg": (encode(ImageEnhance.Color(src).enhance(1.3), quality=92), "image/jpeg"),
    }
    for name in ("grade3.jpg", "grade4.jpg"):
        path = SYNTHETIC / name
        if path.is_file():
            out[f"synthetic-{name}"] = (path.read_bytes(), "image/jpeg")
    extra = iter([("blurred.jpg", src.resize((w // 3, h // 3)).resize((w, h))), ("darker.jpg", ImageEnhance.Brightness(src).enhance(0.7))])
    while len(out) < 8:  # without the synthetic samples, two more transformations
        name, im = next(extra)
        out[name] = (encode(im, quality=92), "image/jpeg")
    return out


async def one_clinician(page, name: str, data: bytes, mime: str, start: asyncio.Event) -> dict:
    await start.wait()
    t0 = time.perf_counter()
    await page.set_input_files(UPLOAD, files=[{"name": name, "mimeType": mime, "buffer": data}])
    uploaded = time.perf_counter() - t0
    await page.wait_for_function(HAS_TEXT, arg=["p", "Conservation:"], timeout=240_000)
    await page.wait_for_function("() => document.querySelectorAll('.st-key-reading .stPlotlyChart image').length >= 2"
                                 " && document.querySelectorAll('[data-testid=stImage] img').length >= 4", timeout=240_000)
    await page.wait_for_function(SETTLED, timeout=240_000)
    done = time.perf_counter() - t0
    table = page.locator("table", has=page.locator("th", has_text="Probability"))
    rows = [[c.strip() for c in await table.locator("tbody tr").nth(g).locator("td").all_inner_texts()] for g in range(5)]
    body = await page.locator("body").inner_text()
    captions = await page.locator('[data-testid="stImageCaption"], [data-testid="caption"]').all_inner_texts()
    return {"name": name, "rows": rows, "body": body, "captions": captions, "uploaded_s": uploaded, "done_s": done,
            "exceptions": await page.locator('[data-testid="stException"]').count()}


async def all_at_once(chromium: str, url: str, photos: dict[str, tuple[bytes, str]]) -> tuple[list[dict], float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            contexts = [await browser.new_context(viewport={"width": 1400, "height": 900}) for _ in photos]
            pages = [await c.new_page() for c in contexts]
            await asyncio.gather(*(p.goto(url) for p in pages))
            await asyncio.gather(*(p.wait_for_selector(UPLOAD, state="attached", timeout=120_000) for p in pages))
            await asyncio.gather(*(p.wait_for_function(SETTLED, timeout=120_000) for p in pages))
            start = asyncio.Event()
            tasks = [asyncio.create_task(one_clinician(p, n, d, m, start))
                     for p, (n, (d, m)) in zip(pages, photos.items(), strict=True)]
            t0 = time.perf_counter()
            start.set()
            results = await asyncio.gather(*tasks)
            total = time.perf_counter() - t0
            # once all are done, each page still shows its own numbers (no late cross-talk)
            for p, r in zip(pages, results, strict=True):
                table = p.locator("table", has=p.locator("th", has_text="Probability"))
                again = [[c.strip() for c in await table.locator("tbody tr").nth(g).locator("td").all_inner_texts()]
                         for g in range(5)]
                assert again == r["rows"], r["name"]
            return results, total
        finally:
            await browser.close()
