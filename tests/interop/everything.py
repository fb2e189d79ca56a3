"""Interop: the official TypeScript reference server (@modelcontextprotocol/server-everything) as a
downstream server behind mcp-gateway, driven by the official Python MCP SDK client.

Usage: python everything.py streamable|sse URL
Prints one JSON line per check; exits non-zero (with a traceback) on any mismatch.
"""

import asyncio
import json
import sys

import mcp_types as types
from mcp import ClientSession

from client import connect, report


async def sampling(context, params):
    text = params.messages[0].content.text
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"sampled({len(text)})"),
        model="interop-test",
    )


async def main(transport, url):
    logs = []

    async def on_log(params):
        logs.append(params)

    async with connect(transport, url) as (read, write):
        async with ClientSession(read, write, sampling_callback=sampling, logging_callback=on_log) as session:
            init = await session.initialize()
            caps = init.capabilities
            assert caps.prompts is not None and caps.resources is not None, caps
            assert caps.completions is not None and caps.logging is not None, caps
            report("initialize", subscribe=caps.resources.subscribe)

            tools = {t.name: t for t in (await session.list_tools()).tools}
            for name in ["ev_echo", "ev_get-sum", "ev_get-structured-content", "ev_trigger-long-running-operation"]:
                assert name in tools, sorted(tools)
            assert tools["ev_get-structured-content"].output_schema is not None
            report("tools/list", count=len(tools))

            echo = await session.call_tool("ev_echo", {"message": "through the gateway"})
            assert echo.content[0].text == "Echo: through the gateway", echo
            total = await session.call_tool("ev_get-sum", {"a": 2, "b": 3})
            assert "5" in total.content[0].text, total
            weather = await session.call_tool("ev_get-structured-content", {"location": "Chicago"})
            assert weather.structured_content and "temperature" in weather.structured_content, weather
            report("tools/call")

            progress = []

            async def on_progress(value, total, message):
                progress.append(value)

            done = await session.call_tool(
                "ev_trigger-long-running-operation",
                {"duration": 0.3, "steps": 3},
                progress_callback=on_progress,
            )
            assert not done.is_error, done
            assert len(progress) == 3, progress
            report("progress", steps=progress)

            prompts = {p.name for p in (await session.list_prompts()).prompts}
            assert {"ev_simple-prompt", "ev_args-prompt", "ev_completable-prompt"} <= prompts, prompts
            got = await session.get_prompt("ev_args-prompt", {"city": "Lisbon"})
            assert "Lisbon" in got.messages[0].content.text, got
            report("prompts/get")

            completion = await session.complete(
                types.PromptReference(type="ref/prompt", name="ev_completable-prompt"),
                {"name": "department", "value": "En"},
            )
            assert "Engineering" in completion.completion.values, completion
            report("completion", values=completion.completion.values)

            resources = (await session.list_resources()).resources
            assert resources, resources
            first = str(resources[0].uri)
            read = await session.read_resource(first)
            assert read.contents, read
            templates = (await session.list_resource_templates()).resource_templates
            template_uris = [t.uri_template for t in templates]
            assert "demo://resource/dynamic/text/{resourceId}" in template_uris, template_uris
            dynamic = await session.read_resource("demo://resource/dynamic/text/2")
            assert dynamic.contents[0].text, dynamic
            report("resources", listed=len(resources))

            await session.set_logging_level("debug")
            await session.call_tool("ev_toggle-simulated-logging", {})
            for _ in range(100):
                if logs:
                    break
                await asyncio.sleep(0.1)
            await session.call_tool("ev_toggle-simulated-logging", {})
            assert logs, "no log message arrived within 10 s"
            assert logs[0].logger and logs[0].logger.startswith("ev"), logs[0]
            report("logging", logger=logs[0].logger)

            if "ev_trigger-sampling-request" in tools:
                sampled = await session.call_tool("ev_trigger-sampling-request", {"prompt": "hello"})
                assert "sampled(" in json.dumps(sampled.model_dump(mode="json")), sampled
                report("sampling")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
