#!/usr/bin/env python3
"""Produces the chat-template golden fixtures under tests/fixtures/chat/.

Every expected rendering comes from HF transformers' own `apply_chat_template(..., tokenize=False)` on a minimal
fast tokenizer carrying the case's template and bos/eos tokens, so the Rust renderer in `src/chat` is compared
against the reference implementation rather than against itself.

Outputs:
  * cases.json: a list of {template_name, template, bos_token, eos_token, messages, add_generation_prompt,
    now_unix?, rendered | error_contains}. `now_unix` pins the clock that `strftime_now` reads (UTC).
  * saved_model/: a tokenizer directory written by `save_pretrained` (tokenizer_config.json + chat_template.jinja),
    with saved_model_expected.json holding renderings of it, to check model-directory discovery end to end.

Usage: python scripts/make_chat_fixtures.py
"""

import datetime as _dt
import json
import shutil
from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast
from transformers.utils import chat_template_utils

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "chat"

# A fixed instant (2024-03-05 14:07:09 UTC) for templates that call strftime_now.
FIXED_NOW = 1709647629


class _FixedDatetime(_dt.datetime):
    """Stands in for `datetime.datetime` inside transformers so that `strftime_now` is reproducible."""

    @classmethod
    def now(cls, tz=None):
        return _dt.datetime.fromtimestamp(FIXED_NOW, _dt.timezone.utc).replace(tzinfo=None)


chat_template_utils.datetime = _FixedDatetime

# ---------------------------------------------------------------------------------------------------------------
# Templates (written out as published with the respective checkpoints; tool-call branches kept where they exist).
# ---------------------------------------------------------------------------------------------------------------

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

LLAMA31 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\\n\\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# Llama 3.2 differs from 3.1 in reading the current date through strftime_now.
LLAMA32 = LLAMA31.replace(
    """{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}""",
    """{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}""",
)
assert LLAMA32 != LLAMA31

QWEN2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

QWEN25 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

QWEN3 = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\\n\\n' }}
    {%- endif %}
    {{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}"""

MISTRAL_V01 = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

MISTRAL_V03 = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.last and system_message is defined %}
            {{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}
        {%- else %}
            {{- '[INST] ' + message['content'] + '[/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

ZEPHYR = """{% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>
' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>
' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>
'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %}"""

# Training-oriented templates mark assistant spans with HF's `{% generation %}` extension tag.
GENERATION_TAG = """{%- for message in messages %}
    {%- if message.role == 'assistant' %}
        {%- generation %}
            {%- set note = 'scoped' %}
            {{- '<|assistant|>\\n' + message.content + eos_token + '\\n' }}
        {%- endgeneration %}
    {%- else %}
        {{- '<|' + message.role + '|>\\n' + message.content + '\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|assistant|>\\n' }}
{%- endif %}
{{- note is defined }}"""

# Not a published template: exercises the Jinja/Python behaviour that templates in the wild lean on.
PY_COMPAT = """{# comment lines are trimmed like blocks #}
{% set ns = namespace(count=0, roles=[]) %}
{% for message in messages %}
  {% set ns.count = ns.count + 1 %}
[{{ loop.index }}/{{ loop.length }} rev={{ loop.revindex0 }} first={{ loop.first }} last={{ loop.last }}]
{% if loop.previtem is defined %}prev={{ loop.previtem.role }}
{% endif %}
role={{ message.role | upper }} title={{ message.content.title() }} words={{ message.content.split() | length }}
strip=<{{ message.content.strip() }}> lstrip=<{{ message.content.lstrip() }}> rstrip=<{{ message.content.rstrip() }}>
starts={{ message.content.startswith('Hel') }} ends={{ message.content.endswith('!') }} rev={{ message.content[::-1] }}
split_nl={{ message.content.split('\\n') | tojson }} replace={{ message.content.replace(' ', '_') }} find={{ message.content.find('o') }}
json={{ message | tojson }} keys={{ message.keys() | list | join(',') }} get={{ message.get('name', 'anon') }}
items={% for k, v in message.items() %}{{ k }}:{{ v | length }};{% endfor %}

{% endfor %}
count={{ ns.count }} roles={{ messages | map(attribute='role') | join('|') }} users={{ messages | selectattr('role', 'equalto', 'user') | list | length }}
py: {{ none }} {{ true }} {{ false }} {{ add_generation_prompt }} {{ tools }} {{ documents }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 7 // 2 }} {{ 2 ** 10 }} {{ 1.5 }} {{ 3 }}
repr: {{ messages[0] }} {{ [1, 'two', none, true, 2.5] }} {{ {'k': 'v'} }}
defined: {{ tools is defined }} {{ tools is none }} {{ documents is none }} {{ unk_token is defined }} {{ date_string is defined }} <{{ not_passed }}>
tokens: {{ bos_token }} {{ eos_token }}
dict: {{ dict(a=1)['a'] }} {{ {'x': [1, 2], 'y': 'é'} | tojson }} {{ {'x': [1, {'z': none}]} | tojson(indent=2) }} {{ ['a', 'b'] | tojson(indent=0) }} {{ [] | tojson(indent=2) }} {{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}
json_esc: {{ 'quote " backslash \\\\ tab \\t nl \\n ctl \\x01 html <&> uni é 日' | tojson }} {{ 'é' | tojson(ensure_ascii=true) }} {{ 1.0 | tojson }} {{ 0.1 | tojson }} {{ 1e20 | tojson }} {{ 1e-7 | tojson }}
filters: {{ '  padded  ' | trim }}|{{ 'abc' | capitalize }}|{{ messages | length }}|{{ messages | first | attr('role') if false else (messages | first)['role'] }}|{{ messages | last | tojson }}|{{ 'a,b,,c'.split(',') | tojson }}|{{ 'x' * 3 }}
{%- if add_generation_prompt %}
GEN
{% endif %}
{%+ if true %}  kept-indent{% endif %}

  {%- if true %}trimmed-left{% endif %}
{% macro greet(name) %}hi {{ name }}{% endmacro %}
{{ greet(messages[0].role) }}
{% raw %}{{ raw }}{% endraw %}
end
"""

LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

DEEPSEEK_R1 = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    "{%- else %}{% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}{%- endif %}"
    "{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}"
    "{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}"
    "{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and 'tool_calls' not in message %}{%- if ns.is_tool %}"
    "{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}"
    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}"
    "{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    "{%- set ns.is_output_first = false %}{%- else %}"
    "{{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}"
    "{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\n'}}{% endif %}"
)

# Not a published template: Jinja statements, tests and filters beyond the message loop of common templates.
JINJA_FEATURES = """{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}
{% for m in messages if m.role != 'system' %}
{% call wrap(m.role) %}{{ loop.index }}:{{ m.content | wordcount }}:{{ loop.changed(m.role) }}{% endcall %}
{% else %}
no non-system messages
{% endfor %}
{% set block %}  {{ messages | length }} message(s)  {% endset %}
[{{ block }}] [{% filter upper %}{{ messages[-1].role }}{% endfilter %}] [{{ 'y' if false }}]
{{ '{}/{}'.format(messages[0].role, messages | length) }} {{ messages[0].content.rsplit(None, 1) }} {{ 'a,b,c'.rsplit(',', 1) }}
{{ 'v1.2-rc'.removeprefix('v').removesuffix('-rc') }} {{ messages[0].content[:5] }} {{ messages[::-1][0].role }} {{ messages[9:] }}
{{ messages[0] is sequence }} {{ messages[0].content is sequence }} {{ undefined_var is sequence }} {{ none is sequence }}
{{ 4 is divisibleby 2 }} {{ 3 is odd }} {{ 'a' is in 'abc' }} {{ 1.0 is integer }} {{ 1 is number }} {{ true is boolean }}
{{ (1,) }} {{ (1, 'a') }} {{ messages[0].items() | list }} {{ {'k': 1} | dictsort }} {{ range(1, 7, 2) | list }}
{{ messages | map(attribute='content') | map('length') | sum }} {{ messages | join(', ', attribute='role') }}
{{ 2 ** 70 }} {{ 10 / 3 }} {{ 'n=' ~ 3 ~ ' f=' ~ 2.50 ~ ' ' ~ none }} {{ 'ab' * 2 }} {{ -7 // 2 }} {{ -7 % 3 }}
{{ messages[0].content | tojson(indent=2) | indent(4) }}
{{ 'a\n\nb\r\nc\n' | indent }}|{{ 'a\n\nb' | indent(2, true, true) }}|{{ 'x\ny' | indent(width='> ') }}
{%- for x in [[1, [2]], 3] recursive %}{% if x is iterable %}({{ loop(x) }}){% else %}{{ x }}{% endif %}{% endfor %}
a  {%- if true -%}  b  {%- endif -%}  c
  {{- ' d ' -}}
 e
	  {% if true %}
	Y
  {% endif %}
{# c #}
  {#- c2 #}
z"""

TEMPLATES = {
    "llama2": (LLAMA2, "<s>", "</s>"),
    "phi3": (PHI3, "<s>", "<|endoftext|>"),
    "deepseek-r1": (DEEPSEEK_R1, "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "jinja-features": (JINJA_FEATURES, None, None),
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
    "llama3.1": (LLAMA31, "<|begin_of_text|>", "<|eot_id|>"),
    "llama3.2": (LLAMA32, "<|begin_of_text|>", "<|eot_id|>"),
    "qwen2": (QWEN2, None, "<|im_end|>"),
    "qwen2.5": (QWEN25, None, "<|im_end|>"),
    "qwen3": (QWEN3, None, "<|im_end|>"),
    "mistral-v0.1": (MISTRAL_V01, "<s>", "</s>"),
    "mistral-v0.3": (MISTRAL_V03, "<s>", "</s>"),
    "gemma": (GEMMA, "<bos>", "<eos>"),
    "zephyr": (ZEPHYR, "<s>", "</s>"),
    "generation-tag": (GENERATION_TAG, "<s>", "</s>"),
    "py-compat": (PY_COMPAT, "<s>", "</s>"),
}

CONVERSATIONS = {
    "system_user": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello!"},
    ],
    "user_only": [{"role": "user", "content": "What is 2+2?"}],
    "multi_turn": [
        {"role": "user", "content": "Hello, who are you?"},
        {"role": "assistant", "content": "I am a bot.\nHow can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
    "system_multi_turn": [
        {"role": "system", "content": "  Be brief.  \n"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>\nThe user greets.\n</think>\n\nHello!"},
        {"role": "user", "content": "Bye"},
    ],
    "whitespace": [{"role": "user", "content": "  \n\tleading and trailing whitespace \n\n  "}],
    "non_ascii": [
        {"role": "user", "content": "Ünïcödé — 日本語のテキスト 🚀 «guillemets» \"double\" 'single' \\ back"},
        {"role": "assistant", "content": "Привет, мир! ½ ∑ 🙂"},
        {"role": "user", "content": "مرحبا"},
    ],
    "non_alternating": [
        {"role": "user", "content": "first"},
        {"role": "user", "content": "second"},
    ],
    "unknown_role": [{"role": "tool", "content": "{\"result\": 4}"}],
}


def make_tokenizer(template, bos, eos):
    vocab = {"<unk>": 0}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    kwargs = {}
    if bos is not None:
        kwargs["bos_token"] = bos
    if eos is not None:
        kwargs["eos_token"] = eos
    return PreTrainedTokenizerFast(tokenizer_object=backend, chat_template=template, **kwargs)


def render(tok, messages, add_generation_prompt):
    try:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
        return {"rendered": text}
    except Exception as exc:  # raise_exception surfaces as jinja2 TemplateError
        return {"error_contains": str(exc)}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, (template, bos, eos) in TEMPLATES.items():
        tok = make_tokenizer(template, bos, eos)
        for conv_name, messages in CONVERSATIONS.items():
            for agp in (False, True):
                case = {
                    "template_name": name,
                    "conversation": conv_name,
                    "template": template,
                    "bos_token": bos,
                    "eos_token": eos,
                    "messages": messages,
                    "add_generation_prompt": agp,
                }
                if "strftime_now" in template:
                    case["now_unix"] = FIXED_NOW
                case.update(render(tok, messages, agp))
                cases.append(case)
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    n_err = sum("error_contains" in c for c in cases)
    print(f"wrote {len(cases)} cases ({n_err} error cases) to {OUT / 'cases.json'}")

    # A real saved tokenizer directory: AddedToken-object bos/eos in tokenizer_config.json, chat_template.jinja.
    saved = OUT / "saved_model"
    shutil.rmtree(saved, ignore_errors=True)
    tok = make_tokenizer(LLAMA31, "<|begin_of_text|>", "<|eot_id|>")
    tok.save_pretrained(saved)
    expected = []
    for conv_name in ("system_user", "multi_turn", "non_ascii"):
        for agp in (False, True):
            out = render(tok, CONVERSATIONS[conv_name], agp)
            expected.append({"messages": CONVERSATIONS[conv_name], "add_generation_prompt": agp, **out})
    (OUT / "saved_model_expected.json").write_text(
        json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"wrote {saved} ({sorted(p.name for p in saved.iterdir())})")


if __name__ == "__main__":
    main()
