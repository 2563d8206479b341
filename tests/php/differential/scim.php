<?php

// The phab-scim side of tests/php/differential.sh: sends the SCIM requests of
// one operation (operations.php) over HTTP.
//
//   scim.php OPERATION STATE.json
//
// Environment: DIFF_SCIM_URL (base URL .../scim/v2 of the service),
// DIFF_SCIM_LDAP_URL (the instance with login_provider set), DIFF_SCIM_TOKEN.
// STATE.json keeps the ids the service returned, by the operations' SAVE_AS
// names. Any answer other than 2xx fails the operation.

require_once __DIR__.'/operations.php';

if (count($argv) !== 3) {
  fwrite(STDERR, "usage: scim.php OPERATION STATE.json\n");
  exit(2);
}
list(, $name, $state_file) = $argv;
$ops = differential_operations();
if (!isset($ops[$name])) {
  fwrite(STDERR, "unknown operation {$name}\n");
  exit(2);
}
$op = $ops[$name];
$state = is_file($state_file)
  ? json_decode(file_get_contents($state_file), true)
  : array();

$base = getenv(
  (isset($op['service']) && $op['service'] === 'ldap')
    ? 'DIFF_SCIM_LDAP_URL'
    : 'DIFF_SCIM_URL');

$fill = function ($text) use (&$state) {
  return preg_replace_callback('/\{([a-z0-9-]+)\}/', function ($m) use (&$state) {
    if (!isset($state[$m[1]])) {
      fwrite(STDERR, "no id saved as {$m[1]}\n");
      exit(1);
    }
    return $state[$m[1]];
  }, $text);
};

foreach ($op['scim'] as $request) {
  list($method, $path, $body, $save_as) = array_pad($request, 4, null);
  $url = $base.$fill($path);
  $ch = curl_init($url);
  $headers = array(
    'Authorization: Bearer '.getenv('DIFF_SCIM_TOKEN'),
    'Accept: application/scim+json',
  );
  curl_setopt($ch, CURLOPT_CUSTOMREQUEST, $method);
  curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
  if ($body !== null) {
    $json = $fill(json_encode($body, JSON_UNESCAPED_SLASHES));
    curl_setopt($ch, CURLOPT_POSTFIELDS, $json);
    $headers[] = 'Content-Type: application/scim+json';
  }
  curl_setopt($ch, CURLOPT_HTTPHEADER, $headers);
  $answer = curl_exec($ch);
  $code = curl_getinfo($ch, CURLINFO_HTTP_CODE);
  if ($code < 200 || $code > 299) {
    fwrite(STDERR, "{$method} {$path}: HTTP {$code} {$answer}\n");
    exit(1);
  }
  if ($save_as !== null) {
    $doc = json_decode($answer, true);
    if (!isset($doc['id'])) {
      fwrite(STDERR, "{$method} {$path}: no id in {$answer}\n");
      exit(1);
    }
    $state[$save_as] = $doc['id'];
    file_put_contents($state_file, json_encode($state));
  }
}
