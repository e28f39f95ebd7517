from typing import Annotated

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI

from fastkit import setup
from fastkit.auth import JWTAuth, JWTKey, TokenClaims, TokenService


def pem_pair(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


# For the demo only: in production, read the PEM text from your secret store.
# openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem
# openssl pkey -in key.pem -pubout -out key.pub.pem
current_private, current_public = pem_pair(ec.generate_private_key(ec.SECP256R1()))
# The key used until now, with RS256: kept to verify the tokens it signed, never to sign.
previous_private, previous_public = pem_pair(rsa.generate_private_key(65537, 2048))

tokens = TokenService(
    keys=[
        # The first key that can sign signs every new token; its kid goes in the header.
        JWTKey.asymmetric(
            kid="2026-06", private_key=current_private, public_key=current_public, algorithm="ES256"
        ),
        # Verify-only; drop it once its last refresh token has expired (7 days).
        JWTKey.asymmetric(kid="2026-01", public_key=previous_public, algorithm="RS256"),
    ],
    issuer="https://auth.example.com",
    audience="orders-api",
    leeway=10,  # seconds of clock skew between machines
)

# Another service only verifies: public keys, no private key, same kids.
verifier = TokenService(
    keys=[
        JWTKey.asymmetric(kid="2026-06", public_key=current_public, algorithm="ES256"),
        JWTKey.asymmetric(kid="2026-01", public_key=previous_public, algorithm="RS256"),
    ],
    issuer="https://auth.example.com",
    audience="orders-api",
)


def load_subject(claims: TokenClaims) -> str:
    return claims.sub


auth = JWTAuth(verifier, user_loader=load_subject)

app = FastAPI()
setup(app)


@app.get("/whoami")
async def whoami(subject: Annotated[str, Depends(auth.current_user)]) -> dict[str, str]:
    return {"sub": subject}
