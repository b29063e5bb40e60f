{# A SQL condition holds on every row; fails with the rows where it is false or NULL. #}
{% test expression_is_true(model, expression) %}
select *
from {{ model }}
where not coalesce({{ expression }}, false)
{% endtest %}
