{{ s.head }}#[serde(crate = "__rt::serde")]
{{ s.vis }} struct {{ s.name }} {
{%- for f in s.fields %}
{{ f.head.at("    ") }}    {{ s.field_vis }} {{ f.name }}: {{ f.ty }},
{%- endfor %}
}
