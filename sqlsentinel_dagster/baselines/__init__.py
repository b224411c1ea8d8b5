"""Thresholds learned from an alert's own recorded values (``baseline:``): the band, the verdict, the words."""
