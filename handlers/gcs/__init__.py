"""GCS: the object store interface, upload records (claims and outcomes), immutable publishing."""
