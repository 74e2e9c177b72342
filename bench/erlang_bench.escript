#!/usr/bin/env escript
%%! +S 1:1 +sbwt none
%% Erlang/OTP peer figures for bench_local_tell: the same ping-pong (N round trips
%% between two processes) and one-way burst (N messages from one process to another),
%% on one scheduler. Prints "pingpong MSGS_PER_S" and "burst MSGS_PER_S"; each figure is
%% the median of 3 runs of at least SECONDS (argument, default 1.0) of work.
-mode(compile).

main(Args) ->
    Secs = case Args of [S | _] -> to_secs(S); [] -> 1.0 end,
    io:format("pingpong ~w~n", [round(measure(fun pingpong/1, 2, Secs))]),
    io:format("burst ~w~n", [round(measure(fun burst/1, 1, Secs))]).

%% Calibrate N so that a run lasts >= Secs, then the median of 3 runs, in msgs/s.
measure(F, MsgsPerN, Secs) ->
    N = calibrate(F, 100000, Secs),
    Rates = lists:sort([N * MsgsPerN / timed(F, N) || _ <- [1, 2, 3]]),
    lists:nth(2, Rates).

calibrate(F, N, Secs) ->
    T = timed(F, N),
    if T >= Secs -> N;
       true -> Scale = if T > 0.01 -> min(10.0, max(1.2, Secs * 1.1 / T)); true -> 10.0 end,
               calibrate(F, round(N * Scale), Secs)
    end.

timed(F, N) ->
    T0 = erlang:monotonic_time(nanosecond),
    F(N),
    (erlang:monotonic_time(nanosecond) - T0) / 1.0e9.

%% Ping-pong: A sends ping to B, B answers pong, N times.
pingpong(N) ->
    Self = self(),
    B = spawn_link(fun pong_loop/0),
    A = spawn_link(fun() -> ping_loop(B, N), Self ! done end),
    receive done -> ok end,
    B ! stop,
    unlink(A), unlink(B).

ping_loop(_B, 0) -> ok;
ping_loop(B, N) ->
    B ! {ping, self()},
    receive pong -> ping_loop(B, N - 1) end.

pong_loop() ->
    receive
        {ping, From} -> From ! pong, pong_loop();
        stop -> ok
    end.

%% Burst: A sends N one-way hits to B as fast as it can; B counts them and reports.
burst(N) ->
    Self = self(),
    B = spawn_link(fun() -> hit_loop(N, Self) end),
    spawn_link(fun() -> send_hits(B, N) end),
    receive hits_done -> ok end.

send_hits(_B, 0) -> ok;
send_hits(B, N) -> B ! hit, send_hits(B, N - 1).

hit_loop(0, Parent) -> Parent ! hits_done;
hit_loop(N, Parent) -> receive hit -> hit_loop(N - 1, Parent) end.

to_secs(S) ->
    try list_to_float(S) catch error:badarg -> float(list_to_integer(S)) end.
