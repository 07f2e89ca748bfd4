"""Drawing: traces, the pipeline map, the playground widgets and timing tables.

Loaded only when something is drawn; no served handler imports this room.
"""
