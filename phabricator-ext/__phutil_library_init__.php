<?php

phutil_register_library('phabricator-scim', __FILE__);
