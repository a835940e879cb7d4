//! AES-256-GCM keyring and ciphertext tests.
