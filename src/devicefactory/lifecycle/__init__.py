"""The device lifecycle across devices: the funnel report (retire lives in ``devices``)."""
