{%- for d in s.docs %}{{ d }}{% endfor %}
#[derive({{ s.derives }})]
#[serde(crate = "{{ rt }}::codegen::serde")]
{{ s.vis }} struct {{ s.name }} {
{%- for f in s.fields %}
    {%- for d in f.docs %}{{ d }}{% endfor %}
    {%- for a in f.attrs %}{{ a }}{% endfor %}
    {{ s.field_vis }} {{ f.name }}: {{ f.ty }},
{%- endfor %}
}
