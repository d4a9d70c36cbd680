"""The storage core: durable files and the writer lock, sealed objects, the typed catalog, key slots
and record shards. Everything here works on bytes and files; what may be done is the door's business.

Modules:
  layout    where things live in a vault directory, the format's name and version
  files     atomic writes, fsync, the writer lock, canonical JSON, the time format
  header    reading `vault.json`
  keyring   key slots: passphrase -> slot key -> master key; the header's MAC
  catalog   the encrypted index and its types
  objects   sealed objects bound to their vault, kind, owner and name
  shards    decoded records as safetensors shards; the content digest
  names     which dataset and user names are allowed
"""
