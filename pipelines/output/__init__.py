"""What users read: report.json and its table, the plots, and the quantization report."""
