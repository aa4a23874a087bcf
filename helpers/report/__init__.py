"""The study report: executed notebooks stitched into HTML and printed to PDF (stitch), figures (plots)."""
