"""What every reproduction report shares: statistics, tables, plots, markdown and summary.json."""
