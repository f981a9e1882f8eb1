"""Reading `/metrics` (Prometheus text) in tests."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape: `value(name, **labels)` is the sum of the samples that match."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        return sum(
            value
            for sample_name, sample_labels, value in self.samples
            if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
        )

    def labels_of(self, name: str, label: str) -> set[str]:
        return {labels[label] for sample_name, labels, _ in self.samples if sample_name == name}


def scrape(base_url: str) -> Scrape:
    response = requests.get(base_url + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return Scrape(response.text)
