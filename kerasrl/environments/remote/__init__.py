"""Remote environments: subprocesses (`remote='multiprocessing'`) and sockets.

Both transports share one wire format (never pickle):

```
frame := magic b"KRL1" | body_length u64 BE | header_length u32 BE | header | buffers
header := UTF-8 JSON {"message": <tree>, "buffers": [nbytes, ...]}
```

In the message tree, numpy arrays (and numpy scalars) are replaced by
`{"__array__": index, "dtype": "<f4", "shape": [...]}` and their raw bytes
follow the header in order. Only bool, int, uint and float dtypes are
accepted. `body_length` is bounded by `max_frame_bytes` (64 MiB by default);
longer frames are rejected before anything is allocated.

Requests are `{"call": name, "kwargs": {...}}` with calls `spec`, `reset`,
`execute`, `episode_return` and `close`; replies are `{"ok": true, "result":
..., "seconds": env_seconds}` or `{"ok": false, "error": {"type", "message",
"traceback"}}`. A socket server first sends `{"challenge": hex, "auth": bool}`;
with a shared key the client answers `{"digest": HMAC-SHA256(key, challenge)}`
and the server replies `{"ok": true}` or an error (then closes).
"""

from kerasrl.environments.remote.client import (
    MultiprocessingEnvironment,
    RemoteEnvironment,
    SocketEnvironment,
)
from kerasrl.environments.remote.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    MAGIC,
    ProtocolError,
    decode,
    encode,
    recv_socket,
    send_socket,
)
from kerasrl.environments.remote.server import serve
from kerasrl.environments.remote.vector import (
    RemoteVectorEnvironment,
    create_remote,
    create_remote_vector,
    socket_addresses,
)

__all__ = [
    "RemoteEnvironment",
    "MultiprocessingEnvironment",
    "SocketEnvironment",
    "RemoteVectorEnvironment",
    "ProtocolError",
    "serve",
    "encode",
    "decode",
    "socket_addresses",
    "create_remote",
    "create_remote_vector",
    "DEFAULT_MAX_FRAME_BYTES",
    "MAGIC",
    "recv_socket",
    "send_socket",
]
