"""vstream's static HTML as Chromium shows it: what a saved notebook, nbconvert and GitHub show."""

from __future__ import annotations

import pytest

from vstream import render

pytestmark = [pytest.mark.browser]


@pytest.mark.parametrize("text", ["\nAn answer that starts on a new line.", "\n\n  Two newlines, then indented."])
def test_an_answer_keeps_its_leading_newlines_in_the_page(page, text):
    page.set_content(f"<html><body>{render.text_block(text)}</body></html>")
    assert page.locator("pre.vstream-text").text_content() == text
