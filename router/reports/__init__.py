"""Cost and savings reports over the cost records: API (/api/costs, /api/dashboard) and CLI (costs report)."""
