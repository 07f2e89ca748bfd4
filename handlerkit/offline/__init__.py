"""Any TorchServe model, offline: a `.mar` or model folder served in-process, no Java.

`OfflineServer` answers TorchServe's inference API with the server's exact statuses and bytes,
through `ts`'s own worker code; `Answer.error` names the stage a failing handler raised in.
"""

from ..run.offline import OfflineServer
from ..serving.frontend import Answer, HandlerError

__all__ = ["Answer", "HandlerError", "OfflineServer"]
