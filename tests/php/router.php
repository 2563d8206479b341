<?php

// Router for `php -S 127.0.0.1:<port> -t <root>/webroot tests/php/router.php`:
// every request goes to the host's front controller, which reads the path
// from REQUEST_URI under the built-in server (PhabricatorStartup), as the
// rewrite rules of a real web server would send it (the host serves its
// CSS and JS itself, under /res/).
return require $_SERVER['DOCUMENT_ROOT'].'/index.php';
