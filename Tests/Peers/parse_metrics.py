#!/usr/bin/env python3
"""Parses a Prometheus text exposition with prometheus_client's parser (an independent implementation of the
format) and prints its samples as one JSON array: [{"name", "labels", "value", "type"}]. A format error exits 1."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    samples = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.append({"name": sample.name, "labels": sample.labels, "value": sample.value, "type": family.type})
    print(json.dumps(samples))


if __name__ == "__main__":
    main()
