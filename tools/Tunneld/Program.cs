// tunneld: the daemon host (composition root). Filled in by issue 3.
Console.Error.WriteLine("tunneld: not built yet");
return 2;
