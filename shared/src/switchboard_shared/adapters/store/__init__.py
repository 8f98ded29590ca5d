"""The Store adapters: `sqlite` (embedded) and `mongo`, with what both do alike in
`common`."""
