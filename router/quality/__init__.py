"""Know the quality you keep: sampled shadow comparisons of routed answers with the most capable model's.

``sampler`` decides and runs a sample off the response path, ``verdict`` is the pairwise judge (pure),
``store`` the quality table, ``budget`` the daily spend cap, ``report``/``panel``/``api`` the numbers,
``calibration``/``cli`` the export and the thresholds.
"""
