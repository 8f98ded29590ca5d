"""What the SQLite and MongoDB stores do alike, written once: how a value is stored
(`records`), the rules of a call update and the usage roll-up (`calls`), and the paging
cursor and page frame of every listing (`paging`)."""
