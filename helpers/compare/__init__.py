"""Stage 05_compare: finished runs read back (runs), seeds aggregated (seeds), models ranked (ranking), display tables (views); two runs of any studies paired (pair, `senticompare pair`)."""
