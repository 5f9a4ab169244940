"""INSTALL_CERTIFICATE and UNINSTALL_CERTIFICATE: CA certificates the device trusts."""

import hashlib
from typing import Any, ClassVar, cast

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Certificates
from shared.arguments.apps import CertificateArguments, CertificateNameArguments
from shared.operations import OperationType


class InstallCertificateHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.INSTALL_CERTIFICATE})
    needs: ClassVar[type[Any]] = Certificates

    async def run(self, arguments: CertificateArguments, context: HandlerContext) -> dict[str, Any]:
        # The arguments model has already refused private keys and anything that is not a CERTIFICATE block.
        pem = arguments.pem()
        path = await cast(Certificates, context.platform).install_certificate(arguments.name, pem)
        return {"name": arguments.name, "path": str(path), "sha256": hashlib.sha256(pem).hexdigest()}


class UninstallCertificateHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.UNINSTALL_CERTIFICATE})
    needs: ClassVar[type[Any]] = Certificates

    async def run(self, arguments: CertificateNameArguments, context: HandlerContext) -> dict[str, Any]:
        await cast(Certificates, context.platform).uninstall_certificate(arguments.name)
        return {"name": arguments.name, "removed": True}
