"""Cost records: the record (``records``), its durable background write (``recorder``) and the Table
transactions that write many at once (``transactions``)."""
