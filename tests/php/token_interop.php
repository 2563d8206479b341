<?php

// PHP side of the SCIM token hash interop test (the Rust side calls it).
//
//   php tests/php/token_interop.php hash <secret>
//     Prints password_hash(<secret>, PASSWORD_ARGON2ID), as the extension
//     stores it in scim_token.tokenHash.
//   php tests/php/token_interop.php verify <secret> <hash>
//     Exits 0 if password_verify(<secret>, <hash>), 1 if not.
//
// Exit 2 on usage errors or when this PHP has no Argon2 support.
//
// The options are those of PhabricatorScimTokenEngine::hashSecret() and of
// the Rust service's hash_secret (m=19456 KiB, t=2, p=1).

function usage() {
  fwrite(
    STDERR,
    "usage: php token_interop.php hash <secret>\n".
    "       php token_interop.php verify <secret> <hash>\n");
  exit(2);
}

if (!defined('PASSWORD_ARGON2ID')) {
  fwrite(STDERR, "this PHP has no Argon2 support (PASSWORD_ARGON2ID)\n");
  exit(2);
}

$action = isset($argv[1]) ? $argv[1] : null;

switch ($action) {
  case 'hash':
    if (count($argv) !== 3) {
      usage();
    }
    $hash = password_hash(
      $argv[2],
      PASSWORD_ARGON2ID,
      array(
        'memory_cost' => 19456,
        'time_cost' => 2,
        'threads' => 1,
      ));
    if (!is_string($hash)) {
      fwrite(STDERR, "password_hash failed\n");
      exit(2);
    }
    echo $hash, "\n";
    exit(0);
  case 'verify':
    if (count($argv) !== 4) {
      usage();
    }
    exit(password_verify($argv[2], $argv[3]) ? 0 : 1);
  default:
    usage();
}
