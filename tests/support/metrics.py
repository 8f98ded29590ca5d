"""Reading a live `/metrics` page: every sample by metric name, parsed with
prometheus_client's own parser."""

from __future__ import annotations

from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def scrape(base_url: str) -> dict[str, list[Sample]]:
    """Every sample `base_url/metrics` exposes, by sample name (a histogram's
    `_bucket`, `_sum` and `_count` each under its own name)."""
    page = httpx.get(f"{base_url}/metrics", timeout=10)
    page.raise_for_status()
    samples: dict[str, list[Sample]] = defaultdict(list)
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            samples[sample.name].append(sample)
    return dict(samples)


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when none)."""
    return sum(
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(key) == wanted for key, wanted in labels.items())
    )


# The samples each metric type exposes (labelled metrics list their families even before
# any sample, so a name is known from its TYPE line).
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "summary": ("_count", "_sum", ""),
}


def exported_sample_names(base_url: str) -> set[str]:
    """Every sample name `base_url/metrics` declares, whether or not it has samples yet."""
    page = httpx.get(f"{base_url}/metrics", timeout=10)
    page.raise_for_status()
    names: set[str] = set()
    for family in text_string_to_metric_families(page.text):
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names
