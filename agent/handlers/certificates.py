"""INSTALL_CERTIFICATE and UNINSTALL_CERTIFICATE: CA certificates the device trusts."""

import hashlib
from typing import Any, ClassVar

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Certificates
from shared.arguments.apps import CertificateArguments, CertificateNameArguments
from shared.operations import OperationType


class InstallCertificateHandler(Handler[CertificateArguments, Certificates]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.INSTALL_CERTIFICATE})

    async def run(self, arguments: CertificateArguments, context: HandlerContext[Certificates]) -> dict[str, Any]:
        # The arguments model has already refused private keys and anything that is not a CERTIFICATE block.
        pem = arguments.pem()
        path = await context.platform.install_certificate(arguments.name, pem)
        return {"name": arguments.name, "path": str(path), "sha256": hashlib.sha256(pem).hexdigest()}


class UninstallCertificateHandler(Handler[CertificateNameArguments, Certificates]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.UNINSTALL_CERTIFICATE})

    async def run(self, arguments: CertificateNameArguments, context: HandlerContext[Certificates]) -> dict[str, Any]:
        await context.platform.uninstall_certificate(arguments.name)
        return {"name": arguments.name, "removed": True}
