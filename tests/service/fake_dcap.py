"""A stand-in for Intel's libsgx_dcap_ql.so.1, compiled with gcc: the three quote-generation symbols with the
real signatures, a settable status per call, and a record of the arguments it was given."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = r"""
#include <stdint.h>
#include <string.h>

static uint32_t st_target, st_size, st_quote, quote_size = 48 + 432 + 64;
static uint32_t seen_size;
static uint8_t seen_report[432];

void fake_set(uint32_t target, uint32_t size, uint32_t quote, uint32_t qsize)
{
    st_target = target; st_size = size; st_quote = quote; quote_size = qsize;
}
uint32_t fake_seen_size(void) { return seen_size; }
const uint8_t *fake_seen_report(void) { return seen_report; }

uint32_t sgx_qe_get_target_info(uint8_t *ti)
{
    if (st_target) return st_target;
    for (int i = 0; i < 512; i++) ti[i] = (uint8_t)(i * 7 + 1);
    return 0;
}

uint32_t sgx_qe_get_quote_size(uint32_t *size)
{
    if (st_size) return st_size;
    *size = quote_size;
    return 0;
}

/* A quote-shaped answer: a version 3 header, the whole REPORT at offset 48 (when it fits), then 0xAB. */
uint32_t sgx_qe_get_quote(const uint8_t *report, uint32_t size, uint8_t *quote)
{
    seen_size = size;
    memcpy(seen_report, report, 432);
    if (st_quote) return st_quote;
    if (size != quote_size) return 0xE002;
    memset(quote, 0xAB, size);
    memset(quote, 0, 48);
    quote[0] = 3;
    if (size >= 48 + 432) memcpy(quote + 48, report, 432);
    return 0;
}
"""


def build_fake_dcap(directory: Path, *, name: str = "libsgx_dcap_ql.so.1", without: str = "") -> Path:
    """Compile the fake library into directory/name; `without` renames one symbol away (a library lacking it)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is required (./dev setup installs it)")
    source = directory / f"{name}.c"
    source.write_text(SOURCE.replace(f"uint32_t {without}(", f"uint32_t renamed_{without}(") if without else SOURCE)
    out = directory / name
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-o", str(out), str(source)], check=True, capture_output=True)
    return out
