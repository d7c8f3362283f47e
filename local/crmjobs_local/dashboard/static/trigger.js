// The Trigger page's payload form: JSON Editor builds it from the task's JSON Schema,
// starting from the sample event's payload. The "Payload as JSON" textarea is what the
// form submits: it follows the form, and while it is open, edits there win.
(function () {
  const schema = JSON.parse(document.getElementById("payload-schema").textContent);
  const field = document.getElementById("payload");
  const raw = document.getElementById("payload-raw");
  const editor = new JSONEditor(document.getElementById("payload-editor"), {
    schema: schema,
    theme: "html",
    disable_collapse: true,
    disable_edit_json: true,
    disable_properties: true,
    show_errors: "interaction",
  });
  // Every property with its schema default, then the sample's values (a start value alone
  // would hide the optional properties it does not name).
  editor.on("ready", function () {
    editor.setValue(Object.assign(editor.getValue(), JSON.parse(field.value || "{}")));
  });
  editor.on("change", function () {
    if (!raw.open) field.value = JSON.stringify(editor.getValue());
  });
  // JSON Editor tells of changes asynchronously: read the form itself when it is sent.
  field.form.addEventListener("submit", function () {
    if (!raw.open) field.value = JSON.stringify(editor.getValue());
  });
  raw.addEventListener("toggle", function () {
    if (raw.open) return;
    try { editor.setValue(JSON.parse(field.value)); } catch (error) { /* the server says why */ }
  });
})();
