"""Article pages with enough text for trafilatura, for tests that fetch from LocalSite."""

from __future__ import annotations

TEXT = (
    "<p>The regional court heard on Monday that the shipment of turbines had been delayed for "
    "months by a dispute over customs paperwork between the two ports.</p>"
    "<p>Engineers said the delay had pushed back the opening of the wind farm until spring, "
    "and that the contractor would ask for compensation from the shipping company.</p>"
)


def article_page(title: str) -> str:
    """A small news page whose body text extraction keeps (over the 100-character floor)."""
    return (f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
            f"{TEXT}</article></body></html>")
