"""The calibrate stage: calibration and evaluation samples from the configured dataset."""
