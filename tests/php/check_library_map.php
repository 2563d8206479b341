<?php

// Checks that phabricator-ext/__phutil_library_map__.php lists every class
// and interface the library declares, in the file that declares it, and
// nothing else. Needs no Phorge or Arcanist checkout: the files are read
// with PHP's own tokenizer.
//
// Usage: php tests/php/check_library_map.php [library-root]

$root = isset($argv[1]) ? $argv[1] : dirname(__DIR__, 2).'/phabricator-ext';
$root = rtrim($root, '/');

$map_file = $root.'/__phutil_library_map__.php';
if (!is_file($map_file)) {
  fwrite(STDERR, "missing library map: {$map_file}\n");
  exit(1);
}

// The map file calls phutil_register_library_map(); capture its argument.
$library_map = null;
function phutil_register_library_map(array $map) {
  global $library_map;
  $library_map = $map;
}
require $map_file;

if (!is_array($library_map) || !isset($library_map['class'])) {
  fwrite(STDERR, "library map did not register a class map\n");
  exit(1);
}

$mapped = $library_map['class'];
$mapped_functions = isset($library_map['function'])
  ? $library_map['function']
  : array();

$declared = array();
$declared_functions = array();
$iterator = new RecursiveIteratorIterator(
  new RecursiveDirectoryIterator($root.'/src', FilesystemIterator::SKIP_DOTS));
foreach ($iterator as $file) {
  if (substr($file->getFilename(), -4) !== '.php') {
    continue;
  }
  $path = $file->getPathname();
  $relative = substr($path, strlen($root) + 1);

  $tokens = token_get_all(file_get_contents($path));
  $count = count($tokens);
  $depth = 0;
  for ($ii = 0; $ii < $count; $ii++) {
    $token = $tokens[$ii];
    if (!is_array($token)) {
      if ($token === '{') {
        $depth++;
      } else if ($token === '}') {
        $depth--;
      }
      continue;
    }
    if ($token[0] === T_CURLY_OPEN || $token[0] === T_DOLLAR_OPEN_CURLY_BRACES) {
      $depth++;
      continue;
    }

    $kind = $token[0];
    $is_type = ($kind === T_CLASS || $kind === T_INTERFACE ||
      $kind === T_TRAIT || (defined('T_ENUM') && $kind === T_ENUM));
    $is_function = ($kind === T_FUNCTION && $depth === 0);
    if (!$is_type && !$is_function) {
      continue;
    }

    // Skip "Foo::class" and "new class".
    for ($jj = $ii - 1; $jj >= 0; $jj--) {
      if (is_array($tokens[$jj]) && $tokens[$jj][0] === T_WHITESPACE) {
        continue;
      }
      break;
    }
    if ($jj >= 0 && is_array($tokens[$jj]) &&
        ($tokens[$jj][0] === T_DOUBLE_COLON || $tokens[$jj][0] === T_NEW)) {
      continue;
    }

    for ($jj = $ii + 1; $jj < $count; $jj++) {
      if (is_array($tokens[$jj]) && $tokens[$jj][0] === T_STRING) {
        if ($is_type) {
          $declared[$tokens[$jj][1]] = $relative;
        } else {
          $declared_functions[$tokens[$jj][1]] = $relative;
        }
        break;
      }
      if (!is_array($tokens[$jj]) || $tokens[$jj][0] !== T_WHITESPACE) {
        // A closure ("function (") or a by-reference function.
        if ($tokens[$jj] !== '&') {
          break;
        }
      }
    }
  }
}

$errors = array();
foreach (array(
  'class' => array($declared, $mapped),
  'function' => array($declared_functions, $mapped_functions),
) as $what => $pair) {
  list($have, $map) = $pair;
  foreach ($have as $name => $file) {
    if (!isset($map[$name])) {
      $errors[] = "{$what} {$name} ({$file}) is missing from the library map";
    } else if ($map[$name] !== $file) {
      $errors[] = "{$what} {$name} is mapped to {$map[$name]}, ".
        "but declared in {$file}";
    }
  }
  foreach ($map as $name => $file) {
    if (!isset($have[$name])) {
      $errors[] = "{$what} {$name} is in the library map, ".
        "but no file declares it";
    }
  }
}

if ($errors) {
  foreach ($errors as $error) {
    fwrite(STDERR, "library map: {$error}\n");
  }
  fwrite(
    STDERR,
    "rebuild it: php <arcanist>/support/lib/rebuild-map.php phabricator-ext\n");
  exit(1);
}

printf(
  "library map: %d classes, %d functions, current\n",
  count($declared),
  count($declared_functions));
exit(0);
