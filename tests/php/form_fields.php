<?php

// form_fields.php <html file> <action>: the fields a browser submits with
// the form whose action is <action>, as NUL-terminated "name=value" items:
// inputs (checkboxes and radios only when checked; no buttons), textareas
// and selects (the selected option, else the first). tests/php/integration.sh
// submits a host's own forms with it, the way a browser would.

$doc = new DOMDocument();
libxml_use_internal_errors(true);
$doc->loadHTML(file_get_contents($argv[1]));
$xpath = new DOMXPath($doc);

foreach ($doc->getElementsByTagName('form') as $form) {
  if ($form->getAttribute('action') !== $argv[2]) {
    continue;
  }
  foreach ($xpath->query('.//input|.//textarea|.//select', $form) as $el) {
    $name = $el->getAttribute('name');
    if ($name === '') {
      continue;
    }
    switch ($el->nodeName) {
      case 'input':
        $type = strtolower($el->getAttribute('type') ?: 'text');
        if (in_array($type, array('submit', 'button', 'image', 'file'), true)) {
          continue 2;
        }
        if (in_array($type, array('checkbox', 'radio'), true) &&
            !$el->hasAttribute('checked')) {
          continue 2;
        }
        $value = $el->getAttribute('value');
        break;
      case 'textarea':
        // Browsers drop the newline right after <textarea>.
        $value = preg_replace('/^\r?\n/', '', $el->textContent);
        break;
      default:
        $value = null;
        foreach ($xpath->query('.//option', $el) as $option) {
          if ($value === null || $option->hasAttribute('selected')) {
            $value = $option->getAttribute('value');
          }
          if ($option->hasAttribute('selected')) {
            break;
          }
        }
        if ($value === null) {
          continue 2;
        }
    }
    echo $name, '=', $value, "\0";
  }
}
