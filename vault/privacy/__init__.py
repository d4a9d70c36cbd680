"""Privacy accounting: what each training run costs the records it read, composed across runs by an
accountant (PRV or RDP), kept per lineage of records in the vault's ledger. No torch here."""
